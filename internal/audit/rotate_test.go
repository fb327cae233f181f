package audit

import (
	"context"
	"path/filepath"
	"testing"
)

// TestBatchSpansSegments: one AppendBatch, after an Append, whose frames
// fill several segments: the writer hands over a batch holding only part
// of one request at each rotation.
func TestBatchSpansSegments(t *testing.T) {
	tests := []struct {
		name    string
		records int
		segment int64
	}{
		{"few segments", 200, 16 << 10},
		{"many segments", 4096, 8 << 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			c := openT(t, dir, Options{SegmentBytes: tt.segment, IndexDir: filepath.Join(dir, "index")})
			if _, err := c.Append(context.Background(), rec(0)); err != nil {
				t.Fatal(err)
			}
			rs := make([]Record, tt.records-1)
			for i := range rs {
				rs[i] = rec(i + 1)
			}
			got, err := c.AppendBatch(context.Background(), rs)
			if err != nil {
				t.Fatalf("AppendBatch: %v", err)
			}
			if got[len(got)-1].Seq != uint64(tt.records) {
				t.Fatalf("last seq %d, want %d", got[len(got)-1].Seq, tt.records)
			}
			c.Close()
			if n := len(segPaths(t, dir)); n < 3 {
				t.Fatalf("%d segments, want several", n)
			}
			if rep, err := Verify(dir); err != nil || rep.Records != uint64(tt.records) {
				t.Fatalf("Verify = %+v, %v", rep, err)
			}
		})
	}
}
