package witness

import (
	"context"
	"path/filepath"
	"testing"
)

// BenchmarkSubmitCosign: one checkpoint submitted to transparency-dev's
// witness on loopback (consistency proof from the previous size), its
// cosignature checked and appended to the cosignature log with fsync:
// the work a Follower does per checkpoint per witness, off the append
// path. Reports the entry's bytes on disk.
func BenchmarkSubmitCosign(b *testing.B) {
	h := newHost(b)
	srv, _ := startWitness(b, h)
	tr := newTree(b, b.N+2, -1)
	c, err := OpenCosigLog(filepath.Join(b.TempDir(), CosignaturesName))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	var bytes int
	b.ResetTimer()
	for i := 1; i <= b.N; i++ {
		signed := tr.signed(b, h.signer, int64(i))
		var proof [][]byte
		if i > 1 {
			proof = tr.proof(b, int64(i-1), int64(i))
		}
		cos, err := Submit(ctx, srv.Client(), srv.URL, uint64(i-1), proof, signed)
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Append(append(append([]byte(nil), signed...), cos...)); err != nil {
			b.Fatal(err)
		}
		bytes = len(signed) + len(cos) + 8
	}
	b.ReportMetric(float64(bytes), "bytes/entry")
}
