package murmur2

import "testing"

// Vectors from Kafka's own UtilsTest.testMurmur2 (clients module).
func TestHashKafkaVectors(t *testing.T) {
	cases := map[string]int32{
		"21":                         -973932308,
		"foobar":                     -790332482,
		"a-little-bit-long-string":   -985981536,
		"a-little-bit-longer-string": -1486304829,
		"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
	}
	for in, want := range cases {
		if got := Hash([]byte(in)); got != want {
			t.Errorf("Hash(%q) = %d, want %d", in, got, want)
		}
	}
	if got, want := Hash([]byte{'a', 'b', 'c'}), int32(479470107); got != want {
		t.Errorf("Hash(abc) = %d, want %d", got, want)
	}
}

func TestPartitionInRange(t *testing.T) {
	for _, key := range []string{"", "a", "user-1", "21", "foobar"} {
		for n := int32(1); n <= 17; n++ {
			p := Partition([]byte(key), n)
			if p < 0 || p >= n {
				t.Fatalf("Partition(%q, %d) = %d out of range", key, n, p)
			}
		}
	}
}
