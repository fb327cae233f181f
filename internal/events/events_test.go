package events

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/coconut-os/coconut/api"
	"github.com/coconut-os/coconut/internal/agent"
	"github.com/coconut-os/coconut/internal/audit"
)

// owners is a Visibility with agent.Manager's rule over a fixed table of
// owners: root outside an agent sees all, an agent itself, a user their
// agents.
type owners map[uint64]uint32

func (o owners) SeesRow(c agent.Caller, aid uint64) bool {
	if c.UID == 0 && c.AID == 0 {
		return true
	}
	if c.AID != 0 {
		return aid == c.AID
	}
	uid, ok := o[aid]
	return aid != 0 && ok && uid == c.UID
}

var (
	root  = agent.Caller{UID: 0}
	alice = agent.Caller{UID: 1000}
	bob   = agent.Caller{UID: 1001}
	table = owners{31: 1000, 32: 1001}
)

func openChain(t testing.TB) *audit.Chain {
	t.Helper()
	c, err := audit.Open(t.TempDir(), audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// testRow is row i: alternating between agents 31 and 32, denies on odd i.
func testRow(i int) audit.Record {
	aid := uint64(31 + i%2)
	if i%2 == 1 {
		return audit.CapDeny(aid, "fs.read", fmt.Sprintf("/f/%d", i), int(api.ECapability), 100, 0, nil)
	}
	return audit.CapUse(aid, "fs.read", fmt.Sprintf("/f/%d", i), 100, 0, nil)
}

// appendRows appends rows from..from+n-1, each in its own commit.
func appendRows(t testing.TB, c *audit.Chain, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		if _, err := c.Append(context.Background(), testRow(i)); err != nil {
			t.Fatal(err)
		}
	}
}

func next(t *testing.T, st *Stream) (Event, bool) {
	t.Helper()
	select {
	case e, ok := <-st.C:
		return e, ok
	case <-time.After(5 * time.Second):
		t.Fatal("no event in 5s")
	}
	return Event{}, false
}

func TestSubscribeBacklogThenLive(t *testing.T) {
	tests := []struct {
		name   string
		caller agent.Caller
		f      Filter
		want   func(r audit.Record) bool
	}{
		{"root sees all", root, Filter{}, func(audit.Record) bool { return true }},
		{"alice her agent", alice, Filter{}, func(r audit.Record) bool { return r.AID == 31 }},
		{"bob his denies", bob, Filter{Result: audit.ResultDeny}, func(r audit.Record) bool { return r.AID == 32 && r.Result == audit.ResultDeny }},
		{"agent itself", agent.Caller{UID: 1000, AID: 31}, Filter{Type: "cap.*"}, func(r audit.Record) bool { return r.AID == 31 }},
		{"root one agent", root, Filter{AID: ptr(uint64(31)), Type: "cap.use"}, func(r audit.Record) bool { return r.AID == 31 && r.Type == "cap.use" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := openChain(t)
			s := New(c, table)
			appendRows(t, c, 0, 20)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			const since = 5
			st, err := s.Subscribe(ctx, tt.caller, since, tt.f)
			if err != nil {
				t.Fatal(err)
			}
			// Rows appended while the backlog is read land on either
			// side of the seam; each must come exactly once.
			go func() {
				for i := 20; i < 40; i++ {
					c.Append(context.Background(), testRow(i)) // a failure shows as a missing row
				}
			}()
			all, err := c.Query(audit.Query{Limit: 100})
			for len(all) < 40 && err == nil {
				time.Sleep(10 * time.Millisecond)
				all, err = c.Query(audit.Query{Limit: 100})
			}
			var want []uint64
			for _, r := range all {
				if r.Seq > since && tt.want(r) {
					want = append(want, r.Seq)
				}
			}
			if len(want) == 0 {
				t.Fatal("the test's filter matches nothing")
			}
			for _, seq := range want {
				e, ok := next(t, st)
				if !ok || e.Record.Seq != seq || e.Record.Hash == "" {
					t.Fatalf("got seq %d (open %v), want %d", e.Record.Seq, ok, seq)
				}
			}
			select {
			case e := <-st.C:
				t.Fatalf("extra event %d", e.Record.Seq)
			case <-time.After(100 * time.Millisecond):
			}
			cancel()
			if _, ok := next(t, st); ok {
				t.Fatal("stream still open after its context ended")
			}
			if st.Err() != nil {
				t.Fatalf("Err after cancel: %v", st.Err())
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestSubscribeRefuses(t *testing.T) {
	c := openChain(t)
	s := New(c, table)
	tests := []struct {
		name   string
		caller agent.Caller
		f      Filter
		want   error
	}{
		{"another user's agent", alice, Filter{AID: ptr(uint64(32))}, api.ErrNotFound},
		{"daemon rows for a user", alice, Filter{AID: ptr(uint64(0))}, api.ErrNotFound},
		{"unknown agent", bob, Filter{AID: ptr(uint64(99))}, api.ErrNotFound},
		{"star inside type", root, Filter{Type: "cap*x"}, api.ErrInvalid},
		{"bad result", root, Filter{Result: "maybe"}, api.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Subscribe(context.Background(), tt.caller, 0, tt.f)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

// A consumer that reads nothing while thousands of rows are appended does
// not block the writer; when it reads, it gets every row once, in order,
// and is told that the stream resumed from the chain.
func TestSlowConsumerResumes(t *testing.T) {
	c := openChain(t)
	s := New(c, table)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := s.Subscribe(ctx, root, 0, Filter{})
	if err != nil {
		t.Fatal(err)
	}
	n := audit.FollowBuffer + Buffer + 3000
	batch := make([]audit.Record, 0, 500)
	start := time.Now()
	for i := 0; i < n; i += len(batch) {
		batch = batch[:0]
		for j := i; j < min(n, i+500); j++ {
			batch = append(batch, audit.CapDeny(31, "fs.read", fmt.Sprint(j), int(api.ECapability), 1, 0, nil))
		}
		if _, err := c.AppendBatch(context.Background(), batch); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d rows appended in %v with a consumer that reads nothing", n, time.Since(start))
	resumed := 0
	for want := uint64(1); want <= uint64(n); want++ {
		e, ok := next(t, st)
		if !ok || e.Record.Seq != want {
			t.Fatalf("got %d (open %v), want %d", e.Record.Seq, ok, want)
		}
		if e.Resumed {
			resumed++
		}
	}
	if resumed == 0 {
		t.Fatal("the consumer fell behind by more than every buffer but was never told it resumed")
	}
}

func TestStreamEndsWhenChainCloses(t *testing.T) {
	c, err := audit.Open(t.TempDir(), audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := New(c, table)
	st, err := s.Subscribe(context.Background(), root, 0, Filter{})
	if err != nil {
		t.Fatal(err)
	}
	appendRows(t, c, 0, 1)
	if e, ok := next(t, st); !ok || e.Record.Seq != 1 {
		t.Fatalf("got %+v %v", e, ok)
	}
	c.Close()
	if _, ok := next(t, st); ok {
		t.Fatal("stream open after the chain closed")
	}
	if st.Err() != nil {
		t.Fatalf("Err = %v, want nil for a closed chain", st.Err())
	}
	if _, err := s.Subscribe(context.Background(), root, 0, Filter{}); !errors.Is(err, api.ErrUnavailable) {
		t.Fatalf("Subscribe on a closed chain: %v, want unavailable", err)
	}
}
