package otlpcollector_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/coconut-os/coconut/internal/audit"
	"github.com/coconut-os/coconut/internal/export/otlp"
)

// BenchmarkAppendExport: durable appends from 256 goroutines with the
// exporter off and on (to the collector's receiver on loopback, gRPC), in
// the same run, so the ratio is what export costs the chain; and the
// exporter's own rate: "drain" appends b.N rows first, then times the
// exporter from the acknowledged seq 0 to lag 0.
//
//	cd test/otlpcollector && go test -run '^$' -bench AppendExport -benchtime 200000x .
func BenchmarkAppendExport(b *testing.B) {
	for _, mode := range []string{"off", "on", "drain"} {
		b.Run(mode, func(b *testing.B) {
			dir := b.TempDir()
			c, err := audit.Open(filepath.Join(dir, "chain"), audit.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			var col *collector
			var e *otlp.Exporter
			if mode != "off" {
				col = startCollector(b, otlp.ProtocolGRPC)
				col.sink.countOnly = true
				e, err = otlp.New(otlp.Config{Endpoint: col.endpoint(), Protocol: otlp.ProtocolGRPC, Insecure: true,
					StateFile: filepath.Join(dir, "otlp.json")}, c)
				if err != nil {
					b.Fatal(err)
				}
				defer e.Close()
			}
			if mode == "on" {
				e.Start()
			}
			b.ResetTimer()
			start := time.Now()
			appendN(b, c, b.N, 256)
			appended := time.Since(start)
			if mode != "drain" {
				b.ReportMetric(float64(b.N)/appended.Seconds(), "appends/s")
			}
			if mode == "off" {
				return
			}
			if mode == "drain" {
				start = time.Now()
				e.Start()
			}
			deadline := time.Now().Add(5 * time.Minute)
			for e.Status().Lag != 0 {
				if time.Now().After(deadline) {
					b.Fatalf("export never caught up: %+v", e.Status())
				}
				time.Sleep(5 * time.Millisecond)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "exported/s")
			if st := e.Status(); st.Failures != 0 {
				b.Logf("export failures during the run: %+v", st)
			}
		})
	}
}

// appendN appends n rows from w goroutines.
func appendN(b *testing.B, c *audit.Chain, n, w int) {
	var wg sync.WaitGroup
	errs := make(chan error, w)
	for g := 0; g < w; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := g; i < n; i += w {
				if _, err := c.Append(context.Background(), audit.CapDeny(uint64(1+i%1000), "fs.read",
					fmt.Sprintf("/home/maya/projects/dream-team/src/module_%06d/file.py", i), 134, 10000+i%5000, uint64(i), nil)); err != nil {
					errs <- err
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}
