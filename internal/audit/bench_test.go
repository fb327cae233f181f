package audit

import (
	"context"
	"runtime"
	"strings"
	"testing"
)

// BenchmarkAppend runs 64 parallel appenders of ~200-byte records; group
// commit is what makes this fast when each fsync costs ~0.4 ms.
func BenchmarkAppend(b *testing.B) {
	c := openT(b, b.TempDir(), Options{})
	defer c.Close()
	r := Record{
		AID: 7, Type: "agent.attest", Cap: "fs.read:/srv/data",
		Object: "/srv/data/" + strings.Repeat("x", 40), Result: ResultAllow, PID: 1234,
	}
	if p, _ := RecordBytes(r); len(p) < 180 || len(p) > 260 {
		b.Fatalf("record is %d bytes, want ~200", len(p))
	}
	b.SetParallelism(max(1, 64/testingProcs()))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Append(context.Background(), r); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

func testingProcs() int { return runtime.GOMAXPROCS(0) }
