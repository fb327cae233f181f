package audit

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func TestAppendReopenContinue(t *testing.T) {
	tests := []struct {
		name string
		opts Options
	}{
		{"defaults", Options{}},
		{"small segments", Options{SegmentBytes: 700}},
		{"verify all", Options{SegmentBytes: 700, VerifyAll: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "chain")
			c := openT(t, dir, tt.opts)
			if seq, h := c.Head(); seq != 0 || h != hexHead(Genesis) {
				t.Fatalf("empty head %d %s", seq, h)
			}
			first := fill(t, c, 10)
			for i, r := range first {
				if r.Seq != uint64(i+1) || r.Hash == "" || !r.Time.Equal(rec(i).Time) {
					t.Fatalf("record %d: %+v", i, r)
				}
			}
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			st, err := os.Stat(dir)
			if err != nil || st.Mode().Perm() != 0o700 {
				t.Fatalf("dir mode %v %v", st.Mode(), err)
			}

			c = openT(t, dir, tt.opts)
			if seq, h := c.Head(); seq != 10 || h != first[9].Hash {
				t.Fatalf("reopened head %d %s, want 10 %s", seq, h, first[9].Hash)
			}
			r, err := c.Append(context.Background(), Record{Type: "daemon.start"})
			if err != nil {
				t.Fatal(err)
			}
			if r.Seq != 11 || time.Since(r.Time) > time.Minute || r.Time.Location() != time.UTC {
				t.Fatalf("continued record %+v", r)
			}
			all, err := c.Query(Query{})
			if err != nil || len(all) != 11 {
				t.Fatalf("query: %d records, %v", len(all), err)
			}
			for i := range first {
				if all[i].Hash != first[i].Hash || all[i].Object != first[i].Object {
					t.Fatalf("stored record %d differs: %+v vs %+v", i, all[i], first[i])
				}
			}
			c.Close()
			rep, err := Verify(dir)
			if err != nil || rep.Records != 11 || rep.Head != r.Hash {
				t.Fatalf("Verify = %+v, %v", rep, err)
			}
			if tt.opts.SegmentBytes > 0 && len(segPaths(t, dir)) < 3 {
				t.Fatalf("expected rotation, got %v", segPaths(t, dir))
			}
		})
	}
}

func TestConcurrentAppends(t *testing.T) {
	dir := t.TempDir()
	c := openT(t, dir, Options{SegmentBytes: 16 << 10})
	const workers, each = 16, 100
	seqs := make(chan uint64, workers*each)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				r, err := c.Append(context.Background(), rec(w*each+i))
				if err != nil {
					t.Error(err)
					return
				}
				seqs <- r.Seq
			}
		}()
	}
	wg.Wait()
	close(seqs)
	seen := map[uint64]bool{}
	for s := range seqs {
		if seen[s] {
			t.Fatalf("seq %d twice", s)
		}
		seen[s] = true
	}
	for s := uint64(1); s <= workers*each; s++ {
		if !seen[s] {
			t.Fatalf("seq %d missing", s)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if rep, err := Verify(dir); err != nil || rep.Records != workers*each {
		t.Fatalf("Verify = %+v, %v", rep, err)
	}
}

func TestAppendBatch(t *testing.T) {
	c := openT(t, t.TempDir(), Options{SegmentBytes: 1000})
	defer c.Close()
	rs, err := c.AppendBatch(context.Background(), []Record{rec(0), rec(1), rec(2), rec(3)})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range rs {
		if r.Seq != uint64(i+1) {
			t.Fatalf("batch record %d has seq %d", i, r.Seq)
		}
	}
	if _, err := c.AppendBatch(context.Background(), nil); !errors.Is(err, ErrInvalidRecord) {
		t.Fatalf("empty batch: %v", err)
	}
	if _, err := c.AppendBatch(context.Background(), []Record{rec(4), {}}); !errors.Is(err, ErrInvalidRecord) {
		t.Fatalf("batch with an invalid record: %v", err)
	}
	if seq, _ := c.Head(); seq != 4 {
		t.Fatalf("a rejected batch must append nothing, head %d", seq)
	}
}

func TestAppendRejects(t *testing.T) {
	big := map[string]string{"x": string(make([]byte, MaxPayload))}
	tests := []struct {
		name string
		r    Record
	}{
		{"no type", Record{}},
		{"bad result", Record{Type: "x", Result: "yes"}},
		{"bad utf8", Record{Type: "x", Object: "\xff"}},
		{"empty detail key", Record{Type: "x", Detail: map[string]string{"": "v"}}},
		{"year", Record{Type: "x", Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}},
		{"too large", Record{Type: "x", Detail: big}},
	}
	c := openT(t, t.TempDir(), Options{})
	defer c.Close()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := c.Append(context.Background(), tt.r); !errors.Is(err, ErrInvalidRecord) {
				t.Fatalf("Append = %v, want ErrInvalidRecord", err)
			}
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Append(ctx, rec(0)); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled ctx: %v", err)
	}
	if seq, _ := c.Head(); seq != 0 {
		t.Fatalf("rejected appends wrote seq %d", seq)
	}
}

func TestLockedAndClosed(t *testing.T) {
	dir := t.TempDir()
	c := openT(t, dir, Options{})
	if _, err := Open(dir, Options{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open = %v, want ErrLocked", err)
	}
	fill(t, c, 1)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := c.Append(context.Background(), rec(1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close = %v", err)
	}
	if _, err := c.Follow(context.Background(), Query{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Follow after Close = %v", err)
	}
	c2 := openT(t, dir, Options{})
	c2.Close()
}

// A failed write breaks the chain for good: the batch and every later
// append fail, and nothing is acknowledged that is not durable.
func TestBrokenIsSticky(t *testing.T) {
	dir := t.TempDir()
	c := openT(t, dir, Options{})
	fill(t, c, 2)
	c.active.Close() // the next write fails with "file already closed"
	if _, err := c.Append(context.Background(), rec(2)); !errors.Is(err, ErrBroken) {
		t.Fatalf("Append on failing disk = %v, want ErrBroken", err)
	}
	if _, err := c.Append(context.Background(), rec(3)); !errors.Is(err, ErrBroken) {
		t.Fatalf("Append after failure = %v, want ErrBroken", err)
	}
	if seq, _ := c.Head(); seq != 2 {
		t.Fatalf("head advanced to %d", seq)
	}
	c.Close()
	c = openT(t, dir, Options{})
	defer c.Close()
	if r, err := c.Append(context.Background(), rec(4)); err != nil || r.Seq != 3 {
		t.Fatalf("after reopen: %+v %v", r, err)
	}
}

func TestBadSegmentName(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "1.seg"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, Options{}); !errors.Is(err, ErrBadSegmentName) {
		t.Fatalf("Open = %v, want ErrBadSegmentName", err)
	}
	if _, err := Verify(dir); !errors.Is(err, ErrBadSegmentName) {
		t.Fatalf("Verify = %v, want ErrBadSegmentName", err)
	}
}
