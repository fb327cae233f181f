package checkpoint

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/coconut-os/coconut/internal/audit"
)

// BenchmarkDeletePrefix: deleting the sealed half of a chain of 200,000
// rows in 1 MiB segments, checkpointed: one whole verify (which also
// computes the compact range), the audit.delete row, the manifest, the
// removals. Reports the rows deleted a second and verify's time after.
func BenchmarkDeletePrefix(b *testing.B) {
	const n = 200000
	for b.Loop() {
		b.StopTimer()
		dir := b.TempDir()
		key := newKey(b)
		mustMkdir(b, filepath.Join(dir, "chain"))
		e := &env{dir: dir, key: key}
		var err error
		if e.log, err = New(Config{ChainDir: e.chainDir(), TreeDir: e.treeDir(), Key: key, Every: 1 << 30, Interval: time.Hour}); err != nil {
			b.Fatal(err)
		}
		if e.chain, err = audit.Open(e.chainDir(), audit.Options{Observer: e.log, SegmentBytes: 1 << 20}); err != nil {
			b.Fatal(err)
		}
		if err := e.log.Start(e.chain); err != nil {
			b.Fatal(err)
		}
		for i := 0; i < n; i += 1000 {
			rs := make([]audit.Record, 1000)
			for j := range rs {
				rs[j] = testRec(i + j)
			}
			if _, err := e.chain.AppendBatch(context.Background(), rs); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := e.log.Prove(n/2, 0); err != nil {
			b.Fatal(err)
		}
		plan, err := PlanDelete(e.chainDir(), e.pub(), time.Now().Add(time.Hour))
		if err != nil || len(plan.Segments) == 0 {
			b.Fatal(plan, err)
		}
		b.StartTimer()
		t := time.Now()
		rep, err := DeletePrefix(e.chain, e.pub(), plan, "bench")
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(rep.Rows)/time.Since(t).Seconds(), "rows_deleted/s")
		b.StopTimer()
		e.close(b)
		t = time.Now()
		if _, _, _, err := VerifyChainWith(e.chainDir(), e.pub(), VerifyOptions{}); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(time.Since(t).Seconds()*1000, "verify_after_ms")
		b.ReportMetric(float64(rep.Rows), "rows_deleted")
		b.StartTimer()
	}
}
