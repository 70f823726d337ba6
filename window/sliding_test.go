package window

import (
	"testing"
	"time"
)

func TestSlidingSpec(t *testing.T) {
	s := Sliding(10 * time.Second).Grace(time.Minute)
	if got := s.Kind(); got != KindSliding {
		t.Errorf("Kind() = %v, want %v", got, KindSliding)
	}
	if got := s.Kind().String(); got != "sliding" {
		t.Errorf("Kind().String() = %q, want %q", got, "sliding")
	}
	if got := s.SizeMs(); got != 10000 {
		t.Errorf("SizeMs() = %d, want 10000", got)
	}
	if got := s.AdvanceMs(); got != 0 {
		t.Errorf("AdvanceMs() = %d, want 0", got)
	}
	if got := s.GraceMs(); got != 60000 {
		t.Errorf("GraceMs() = %d, want 60000", got)
	}
}

func TestSlidingString(t *testing.T) {
	tests := []struct {
		spec Spec
		want string
	}{
		{Sliding(10 * time.Second), "sliding(maxDiff=10s, grace=0s)"},
		{Sliding(10 * time.Millisecond).Grace(time.Minute), "sliding(maxDiff=10ms, grace=1m0s)"},
		{Sliding(0), "sliding(maxDiff=0s, grace=0s)"},
	}
	for _, tc := range tests {
		if got := tc.spec.String(); got != tc.want {
			t.Errorf("String() = %q, want %q", got, tc.want)
		}
	}
}

func TestSlidingValidate(t *testing.T) {
	tests := []struct {
		name string
		spec Spec
		want string // "" for valid
	}{
		{"valid", Sliding(10 * time.Second).Grace(time.Minute), ""},
		{"no grace", Sliding(time.Millisecond), ""},
		{"zero maxDiff", Sliding(0), ""}, // allowed, as by Kafka Streams
		{"negative maxDiff", Sliding(-time.Second), "window: sliding maxDiff must not be negative, got -1000ms"},
		{"negative grace", Sliding(time.Second).Grace(-time.Millisecond), "window: grace must not be negative, got -1ms"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.spec.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tc.want != "" && (err == nil || err.Error() != tc.want):
				t.Errorf("Validate() = %v, want %q", err, tc.want)
			}
		})
	}
}
