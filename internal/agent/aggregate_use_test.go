package agent

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coconut-os/coconut/internal/audit"
	"github.com/coconut-os/coconut/internal/enforce"
)

// TestAggregateUsePacing (issue 19.1): an agent's allowed uses are
// counted after each key's first row, their aggregate rows come at most
// once per useAggregateEvery, on a budget apart from its deny rows (a
// deny row just written does not hold a use row back, nor the reverse);
// audit_each_use counts none.
func TestAggregateUsePacing(t *testing.T) {
	var g aggregator
	t0 := time.Unix(1000, 0)
	use := enforce.Event{Source: "supervisor", Cap: "fs.exec", Object: "/usr/bin/true", Syscall: "execve", Allowed: true}
	deny := enforce.Event{Source: "supervisor", Cap: "fs.read", Object: "/secret", Errno: 134}
	for _, ev := range []enforce.Event{use, deny} {
		if g.wouldGather(1, ev) || g.gather(1, nil, ev, t0) {
			t.Fatalf("first %s of %s counted: it must be a row of its own", ev.Cap, ev.Object)
		}
		if !g.wouldGather(1, ev) {
			t.Fatalf("repeat %s of %s would not be counted", ev.Cap, ev.Object)
		}
	}
	for i := range 500 {
		use.Seq, deny.Seq = uint64(i+2), uint64(i+2)
		now := t0.Add(time.Duration(i+1) * time.Microsecond)
		if !g.gather(1, nil, use, now) || !g.gather(1, nil, deny, now) {
			t.Fatalf("repeat %d not counted", i)
		}
	}
	uk, dk := aggKeyOf(1, use), aggKeyOf(1, deny)
	if a := g.pending[uk]; a == nil || a.count != 500 || a.firstSeq != 2 || a.lastSeq != 501 || len(a.events) != 0 {
		t.Fatalf("use aggregate %+v: want 500 counted, seq 2..501, no event kept (answered at once)", a)
	}
	if a := g.pending[dk]; a == nil || a.count != 500 || len(a.events) != 500 {
		t.Fatalf("deny aggregate %+v: want 500 counted and held", a)
	}
	// A deny row was just written: the use row is still due, and the
	// reverse.
	g.agentRow[1] = t0.Add(time.Second)
	now := t0.Add(time.Second)
	if d := g.due(now, false); len(d) != 1 || d[0] != uk {
		t.Fatalf("due %v, want the use key alone", d)
	}
	delete(g.pending, uk)
	g.useRow[1] = now
	g.gather(1, nil, use, now)
	if d := g.due(now.Add(aggregateEvery), false); len(d) != 1 || d[0] != dk {
		t.Fatalf("due after %v: %v, want the deny key alone (uses wait %v)", aggregateEvery, d, useAggregateEvery)
	}
	if d := g.due(now.Add(useAggregateEvery), false); len(d) != 2 {
		t.Fatalf("due after %v: %v, want both", useAggregateEvery, d)
	}

	var each aggregator
	each.eachUse = true
	for range 3 {
		if each.gather(1, nil, use, t0) || each.wouldGather(1, use) {
			t.Fatal("audit_each_use: a use was counted")
		}
	}
	if first, second := each.gather(1, nil, deny, t0), each.gather(1, nil, deny, t0); first || !second {
		t.Fatalf("audit_each_use: deny gathered %v then %v, want false then true (denies are still aggregated)", first, second)
	}
}

// TestRecordUsesAggregated: through the consumer's recordEvents, 300
// supervised uses of one binary are answered at once (nil), the first as
// its own cap.use row and the rest as counts; the flush writes one
// aggregate whose count makes the rows' sum exactly 300. On a chain below
// its reserve a use that would only be counted is refused (not let
// through uncounted), while a first use still gets its row.
func TestRecordUsesAggregated(t *testing.T) {
	k := &fakeKernel{counts: map[string]uint64{}, events: make(chan enforce.Event)}
	m := counterManager(t, t.TempDir(), k)
	chain := m.cfg.Chain.(*audit.Chain)
	const n = 300
	for i := range n {
		reply := make(chan error, 1)
		m.recordEvents([]enforce.Event{{Source: "supervisor", Seq: uint64(i + 1), CgroupID: 9, PID: 5, Cap: "fs.exec",
			Object: "/usr/bin/true", Syscall: "execve", Allowed: true, Reply: reply}})
		select {
		case err := <-reply:
			if err != nil {
				t.Fatalf("use %d refused on a healthy chain: %v", i, err)
			}
		default:
			t.Fatalf("use %d not answered at once", i)
		}
	}
	m.flushAggregates(true)
	rows, err := chain.Query(audit.Query{AID: ptr(uint64(7)), Type: audit.TypeCapUse, Limit: audit.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	var sum uint64
	for _, r := range rows {
		sum += audit.RowCount(r)
	}
	if len(rows) != 2 || sum != n || rows[0].Detail["count"] != "" || rows[1].Detail["first_kseq"] != "2" || rows[1].Detail["last_kseq"] != "300" {
		t.Fatalf("%d rows counting %d (%+v), want a first row and one aggregate counting %d", len(rows), sum, rows, n)
	}

	chain.SetReserve(1 << 62)
	reply := make(chan error, 1)
	m.recordEvents([]enforce.Event{{Source: "supervisor", Seq: n + 1, CgroupID: 9, PID: 5, Cap: "fs.exec", Object: "/usr/bin/true", Syscall: "execve", Allowed: true, Reply: reply}})
	if err := <-reply; !errors.Is(err, audit.ErrLowSpace) {
		t.Fatalf("counted use below the reserve answered %v, want ErrLowSpace", err)
	}
	m.recordEvents([]enforce.Event{{Source: "supervisor", Seq: n + 2, CgroupID: 9, PID: 5, Cap: "fs.exec", Object: "/usr/bin/env", Syscall: "execve", Allowed: true, Reply: reply}})
	if err := <-reply; err != nil {
		t.Fatalf("first use of a new object below the reserve: %v (its own row can still be written)", err)
	}
	if len(m.agg.pending) != 0 {
		t.Fatalf("pending after refusals: %+v", m.agg.pending)
	}
}

// TestFlushAgentBeforeEnd: flushAgent (what transitionWith does before
// an agent's terminal row) has the running consumer record the events
// already queued and write the agent's pending aggregates at once, every
// network guard connect acknowledged only then; the counts add up.
func TestFlushAgentBeforeEnd(t *testing.T) {
	k := &fakeKernel{counts: map[string]uint64{}, events: make(chan enforce.Event, 8)}
	m := counterManager(t, t.TempDir(), k)
	m.aggFlushed, m.aggReq = make(chan struct{}), make(chan aggFlushReq)
	done := make(chan struct{})
	go func() { m.consumeDenies(); close(done) }()
	t.Cleanup(func() { close(m.stop); close(k.events); <-done })
	var acked atomic.Int32
	for i := range 5 {
		k.events <- enforce.Event{Source: "netguard", Seq: uint64(i + 1), CgroupID: 9, PID: 5, Cap: "net.connect",
			Object: "tcp 127.0.0.1:80", Syscall: "connect", Allowed: true, Ack: func() { acked.Add(1) }}
	}
	m.flushAgent(7)
	rows, err := m.cfg.Chain.Query(audit.Query{AID: ptr(uint64(7)), Type: audit.TypeCapUse, Limit: audit.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	var sum uint64
	for _, r := range rows {
		sum += audit.RowCount(r)
	}
	if sum != 5 || acked.Load() != 5 {
		t.Fatalf("after flushAgent: %d rows counting %d, %d acknowledged; want the 5 connects on record and acknowledged", len(rows), sum, acked.Load())
	}
	if len(rows) > 2 {
		t.Errorf("%d rows for 5 connects of one key: want the first and an aggregate", len(rows))
	}
}

func ptr[T any](v T) *T { return &v }

// TestReplayedUseInAggregate: allowed connects of the network guard that
// an aggregate cap.use row of the dead daemon already counts (its kseq
// range) are acknowledged and not counted again when the ring hands them
// to the next daemon; one past the range is recorded.
func TestReplayedUseInAggregate(t *testing.T) {
	dir := t.TempDir()
	k := &fakeKernel{counts: map[string]uint64{}, events: make(chan enforce.Event)}
	m := counterManager(t, dir, k)
	ev := enforce.Event{Source: "netguard", CgroupID: 9, PID: 5, Cap: "net.connect", Object: "tcp 127.0.0.1:80", Syscall: "connect", Allowed: true}
	for seq := uint64(1); seq <= 10; seq++ {
		ev.Seq, ev.Ack = seq, func() {}
		m.recordEvents([]enforce.Event{ev})
	}
	m.flushAggregates(true) // the dead daemon wrote seq 1 and 2..10 as an aggregate
	m.cfg.Chain.(*audit.Chain).Close()

	m2 := counterManager(t, dir, k)
	before, _ := m2.cfg.Chain.Head()
	var acks atomic.Int32
	var batch []enforce.Event
	for _, seq := range []uint64{5, 10, 11} {
		e := ev
		e.Seq, e.Replayed, e.Ack = seq, true, func() { acks.Add(1) }
		batch = append(batch, e)
	}
	m2.recordEvents(batch)
	after, _ := m2.cfg.Chain.Head()
	if after != before+1 || acks.Load() != 3 {
		t.Fatalf("chain %d → %d, %d acks: want one new row (kseq 11) and all 3 acknowledged", before, after, acks.Load())
	}
	rows, err := m2.cfg.Chain.Query(audit.Query{Type: audit.TypeCapUse, AfterSeq: before})
	if err != nil || len(rows) != 1 || rows[0].KSeq != 11 {
		t.Fatalf("new cap.use rows %+v (%v), want kseq 11 alone", rows, err)
	}
}
