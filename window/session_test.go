package window

import (
	"testing"
	"time"
)

func TestSessionSpec(t *testing.T) {
	s := Sessions(5 * time.Second)
	if s.GapMs() != 5000 || s.GraceMs() != 0 {
		t.Errorf("Sessions(5s) = gap %dms grace %dms, want 5000ms 0ms", s.GapMs(), s.GraceMs())
	}
	g := s.Grace(1500 * time.Millisecond)
	if g.GapMs() != 5000 || g.GraceMs() != 1500 {
		t.Errorf("Grace(1.5s) = gap %dms grace %dms, want 5000ms 1500ms", g.GapMs(), g.GraceMs())
	}
	if s.GraceMs() != 0 {
		t.Error("Grace modified its receiver")
	}
	if got, want := g.String(), "session(gap=5s, grace=1.5s)"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if err := g.Validate(); err != nil {
		t.Errorf("Validate() = %v, want nil", err)
	}
}

func TestSessionSpecValidate(t *testing.T) {
	tests := []struct {
		name string
		spec SessionSpec
		want string
	}{
		{"zero", SessionSpec{}, "window: session gap must be at least 1ms, got 0ms (use window.Sessions)"},
		{"sub-millisecond gap", Sessions(time.Microsecond), "window: session gap must be at least 1ms, got 0ms (use window.Sessions)"},
		{"negative gap", Sessions(-time.Second), "window: session gap must be at least 1ms, got -1000ms (use window.Sessions)"},
		{"negative grace", Sessions(time.Second).Grace(-time.Millisecond), "window: session grace must not be negative, got -1ms"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.spec.Validate()
			if err == nil || err.Error() != tc.want {
				t.Errorf("Validate() = %v, want %q", err, tc.want)
			}
		})
	}
	if err := Sessions(time.Millisecond).Validate(); err != nil {
		t.Errorf("a 1ms gap: Validate() = %v, want nil", err)
	}
}
