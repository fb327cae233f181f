package audit

import (
	"fmt"

	"context"
	"github.com/zeebo/blake3"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
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

// BenchmarkVerify reports how fast a whole chain is re-checked.
func BenchmarkVerify(b *testing.B) {
	dir := b.TempDir()
	c := openT(b, dir, Options{})
	rs := make([]Record, 1000)
	for i := range rs {
		rs[i] = rec(i)
	}
	for range 50 {
		if _, err := c.AppendBatch(context.Background(), rs); err != nil {
			b.Fatal(err)
		}
	}
	c.Close()
	var size int64
	for _, p := range segPaths(b, dir) {
		fi, _ := os.Stat(p)
		size += fi.Size()
	}
	b.SetBytes(size)
	b.ResetTimer()
	for b.Loop() {
		if rep, err := Verify(dir); err != nil || rep.Records != 50000 {
			b.Fatalf("Verify = %+v, %v", rep, err)
		}
	}
}

// benchChain is 200,000 records over 4 MiB segments, made once.
func benchChain(b *testing.B) (string, int64) {
	b.Helper()
	dir := b.TempDir()
	c := openT(b, dir, Options{SegmentBytes: 4 << 20})
	rs := make([]Record, 1000)
	for i := range rs {
		rs[i] = rec(i)
	}
	for range 200 {
		if _, err := c.AppendBatch(context.Background(), rs); err != nil {
			b.Fatal(err)
		}
	}
	c.Close()
	var size int64
	for _, p := range segPaths(b, dir) {
		fi, _ := os.Stat(p)
		size += fi.Size()
	}
	return dir, size
}

// BenchmarkVerifyWorkers is VerifyParallel on one worker and on every
// core, and BLAKE3 over the same records (prev head || record bytes, one
// hash each) on one core: the baseline of the verify/BLAKE3 ratio.
func BenchmarkVerifyWorkers(b *testing.B) {
	dir, size := benchChain(b)
	for _, w := range []int{1, 0} {
		b.Run(fmt.Sprintf("workers=%d", w), func(b *testing.B) {
			b.SetBytes(size)
			t, c := time.Now(), cpuSeconds()
			for b.Loop() {
				if rep, err := VerifyParallel(dir, ParallelOptions{Workers: w}); err != nil || rep.Records != 200000 {
					b.Fatalf("Verify = %+v, %v", rep, err)
				}
			}
			// Cores kept busy: below the worker count on a shared machine.
			b.ReportMetric((cpuSeconds()-c)/time.Since(t).Seconds(), "cores")
		})
	}
	b.Run("blake3-records-1core", func(b *testing.B) {
		var payloads [][]byte
		VerifyFunc(dir, func(_ uint64, p []byte) error { payloads = append(payloads, append([]byte(nil), p...)); return nil })
		h := blake3.New()
		b.SetBytes(size)
		for b.Loop() {
			head := Genesis
			for _, p := range payloads {
				head = nextHead(h, head, p)
			}
		}
	})
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}
