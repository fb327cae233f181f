package tiles

import (
	"fmt"
	"testing"

	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/coconut-os/coconut/internal/checkpoint"
)

// BenchmarkWrite publishes 100,000 rows of 300 bytes (about the chain's
// average) into a fresh directory; rows/s is the figure.
func BenchmarkWrite(b *testing.B) {
	const n = 100_000
	leaves := make([][]byte, n)
	hashes := make([][]byte, n)
	for i := range leaves {
		leaves[i] = fmt.Appendf(make([]byte, 0, 300), "%0300d", i)
		hashes[i] = rfc6962.DefaultHasher.HashLeaf(leaves[i])
	}
	cp := checkpoint.Checkpoint{Origin: "coconut/bench", Size: n, Root: [32]byte(root(hashes))}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := Write(b.TempDir(), cp, []byte("note"), leaves); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "rows/s")
}

// root is the RFC 6962 root of leaf hashes (the spec's recursion, not the
// code under test).
func root(h [][]byte) []byte {
	if len(h) == 1 {
		return h[0]
	}
	k := 1
	for k*2 < len(h) {
		k *= 2
	}
	return rfc6962.DefaultHasher.HashChildren(root(h[:k]), root(h[k:]))
}
