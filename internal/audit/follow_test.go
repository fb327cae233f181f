package audit

import (
	"context"
	"testing"
	"time"
)

func recv(t *testing.T, ch <-chan Record) (Record, bool) {
	t.Helper()
	select {
	case r, ok := <-ch:
		return r, ok
	case <-time.After(5 * time.Second):
		t.Fatal("follow: nothing received in 5s")
	}
	return Record{}, false
}

func TestFollowExistingThenNew(t *testing.T) {
	c := openT(t, t.TempDir(), Options{SegmentBytes: 1500})
	defer c.Close()
	fill(t, c, 10)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := c.Follow(ctx, Query{AfterSeq: 3, Result: ResultDeny})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []uint64{4, 6, 8, 10} {
		if r, ok := recv(t, ch); !ok || r.Seq != want || r.Hash == "" {
			t.Fatalf("backlog: got %+v %v, want seq %d", r, ok, want)
		}
	}
	for i := 10; i < 14; i++ {
		if _, err := c.Append(context.Background(), rec(i)); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []uint64{12, 14} {
		if r, ok := recv(t, ch); !ok || r.Seq != want {
			t.Fatalf("live: got %+v %v, want seq %d", r, ok, want)
		}
	}
	cancel()
	for {
		if _, ok := recv(t, ch); !ok {
			break
		}
	}
}

// A follower that reads nothing is dropped instead of blocking appends; what
// it got is a gapless prefix, and it resumes with AfterSeq.
func TestFollowSlowReaderDropped(t *testing.T) {
	c := openT(t, t.TempDir(), Options{})
	defer c.Close()
	ch, err := c.Follow(context.Background(), Query{})
	if err != nil {
		t.Fatal(err)
	}
	n := FollowBuffer + 200
	batch := make([]Record, 0, 500)
	for i := 0; i < n; i += len(batch) {
		batch = batch[:0]
		for j := i; j < min(n, i+500); j++ {
			batch = append(batch, rec(j))
		}
		if _, err := c.AppendBatch(context.Background(), batch); err != nil {
			t.Fatal(err)
		}
	}
	var last uint64
	for {
		r, ok := recv(t, ch)
		if !ok {
			break
		}
		if r.Seq != last+1 {
			t.Fatalf("gap: %d after %d", r.Seq, last)
		}
		last = r.Seq
	}
	if last >= uint64(n) {
		t.Fatalf("slow follower was not dropped (got all %d)", last)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err = c.Follow(ctx, Query{AfterSeq: last})
	if err != nil {
		t.Fatal(err)
	}
	for want := last + 1; want <= uint64(n); want++ {
		if r, ok := recv(t, ch); !ok || r.Seq != want {
			t.Fatalf("resume: got %d %v, want %d", r.Seq, ok, want)
		}
	}
}

func TestFollowEndsOnClose(t *testing.T) {
	c := openT(t, t.TempDir(), Options{})
	ch, err := c.Follow(context.Background(), Query{})
	if err != nil {
		t.Fatal(err)
	}
	fill(t, c, 1)
	if r, ok := recv(t, ch); !ok || r.Seq != 1 {
		t.Fatalf("got %+v %v", r, ok)
	}
	c.Close()
	if _, ok := recv(t, ch); ok {
		t.Fatal("channel still open after Close")
	}
}
