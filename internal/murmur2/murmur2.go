// Package murmur2 implements the key partitioner of Kafka's Java clients:
// murmur2 with seed 0x9747b28c, the sign bit masked, modulo the partition
// count. Both of eddy's log backends partition keys with it, so a topic
// written by a Java producer co-partitions with one written by eddy.
package murmur2

// Hash returns Kafka's murmur2 hash of data (org.apache.kafka.common.utils.Utils.murmur2).
func Hash(data []byte) int32 {
	const (
		seed = 0x9747b28c
		m    = 0x5bd1e995
		r    = 24
	)
	n := len(data)
	h := uint32(seed) ^ uint32(n)
	for i := 0; i+4 <= n; i += 4 {
		k := uint32(data[i]) | uint32(data[i+1])<<8 | uint32(data[i+2])<<16 | uint32(data[i+3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	tail := n &^ 3
	switch n & 3 {
	case 3:
		h ^= uint32(data[tail+2]) << 16
		fallthrough
	case 2:
		h ^= uint32(data[tail+1]) << 8
		fallthrough
	case 1:
		h ^= uint32(data[tail])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return int32(h)
}

// Partition returns the partition in [0, n) that Kafka's default partitioner
// picks for a non-nil key: toPositive(murmur2(key)) % n.
func Partition(key []byte, n int32) int32 {
	return (Hash(key) & 0x7fffffff) % n
}
