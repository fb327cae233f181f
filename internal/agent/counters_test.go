package agent

import (
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/coconut-os/coconut/internal/audit"
	"github.com/coconut-os/coconut/internal/enforce"
	"github.com/coconut-os/coconut/internal/launch"
	"github.com/coconut-os/coconut/internal/state"
)

// fakeKernel is an enforcer whose kernel counts the test sets.
type fakeKernel struct {
	mu      sync.Mutex
	counts  map[string]uint64
	events  chan enforce.Event
	pending atomic.Bool
}

func (f *fakeKernel) Name() string                              { return "fake" }
func (f *fakeKernel) Rights() []string                          { return nil }
func (f *fakeKernel) Bind(enforce.Agent) (*launch.Floor, error) { return nil, nil }
func (f *fakeKernel) Update(enforce.Agent) error                { return nil }
func (f *fakeKernel) Unbind(uint64) error                       { return nil }
func (f *fakeKernel) Events() <-chan enforce.Event              { return f.events }
func (f *fakeKernel) Close() error                              { return nil }
func (f *fakeKernel) Pending() bool                             { return f.pending.Load() }
func (f *fakeKernel) Counters() (enforce.Counters, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := enforce.Counters{BySource: map[string]uint64{}}
	for k, v := range f.counts {
		c.BySource[k] = v
		c.KernelDenies += v
	}
	return c, nil
}

func (f *fakeKernel) set(src string, n uint64) {
	f.mu.Lock()
	f.counts[src] = n
	f.mu.Unlock()
}

// counterManager is the part of a Manager the counters use: a real chain
// in dir, one agent (AID 7, cgroup 9) and the fake kernel.
func counterManager(t *testing.T, dir string, k *fakeKernel) *Manager {
	t.Helper()
	chain, err := audit.Open(filepath.Join(dir, "chain"), audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { chain.Close() })
	m := &Manager{cfg: Config{StateDir: dir, Chain: chain, Enforce: k}, log: slog.New(slog.NewTextHandler(os.Stderr, nil)),
		agents:   map[uint64]*entry{7: {rec: &record{AID: 7, CgroupID: 9, State: state.CapabilityDenied}}},
		byCgroup: map[uint64]uint64{9: 7}, stop: make(chan struct{})}
	if err := m.initCounters(); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestCountersSettleInFlight: a deny the kernel side has counted and whose
// row is not written yet is in flight, not a difference: the snapshot
// records it and reports equal counters (doctor once read the two sides
// at two instants and showed kernel = chain + 1).
func TestCountersSettleInFlight(t *testing.T) {
	k := &fakeKernel{counts: map[string]uint64{}, events: make(chan enforce.Event, 4)}
	m := counterManager(t, t.TempDir(), k)
	reply := make(chan error, 1)
	k.set("supervisor", 1)
	k.events <- enforce.Event{Source: "supervisor", Seq: 1, CgroupID: 9, PID: 5, Cap: "fs.read", Object: "/secret", Errno: 134, Reply: reply}
	if s := m.raw(); len(s.diff()) == 0 {
		t.Fatalf("raw read with a deny in flight agrees: %+v", s)
	}
	s := m.settle(k.events)
	if !s.settled || len(s.diff()) != 0 || s.chain["supervisor"] != 1 {
		t.Fatalf("settled snapshot %+v, want both sides 1", s)
	}
	if err := <-reply; err != nil {
		t.Fatal(err)
	}
	m.note(s)
	if a := m.CountersAlarm(); len(a) != 0 {
		t.Fatalf("alarm after an in-flight deny: %+v", a)
	}
	if _, err := os.Stat(filepath.Join(m.cfg.StateDir, alarmFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("alarm file written: %v", err)
	}
}

// TestCountersAlarmPersists: a difference that stays with nothing in
// flight is real: it is in the alarm with its source, size and first
// sighting, kept across a restart (a new Manager on the same state
// directory), and not while denies are pending.
func TestCountersAlarmPersists(t *testing.T) {
	dir := t.TempDir()
	k := &fakeKernel{counts: map[string]uint64{"netguard": 3}, events: make(chan enforce.Event)}
	m := counterManager(t, dir, k)
	k.pending.Store(true)
	if s := m.settle(k.events); s.settled {
		t.Fatalf("settled while denies are pending: %+v", s)
	}
	k.pending.Store(false)
	s := m.settle(k.events)
	if !s.settled || s.diff()["netguard"] != 3 {
		t.Fatalf("snapshot %+v, want a settled difference of 3 for netguard", s)
	}
	m.note(s)
	a := m.CountersAlarm()
	if len(a) != 1 || a[0].Source != "netguard" || a[0].Difference != 3 || !a[0].Now || a[0].FirstSeen.IsZero() {
		t.Fatalf("alarm %+v", a)
	}
	first := a[0].FirstSeen

	k2 := &fakeKernel{counts: map[string]uint64{}, events: make(chan enforce.Event)}
	m.cfg.Chain.(*audit.Chain).Close()
	m2 := counterManager(t, dir, k2)
	m2.note(m2.settle(k2.events))
	b := m2.CountersAlarm()
	if len(b) != 1 || b[0].Source != "netguard" || b[0].Difference != 3 || b[0].Now || !b[0].FirstSeen.Equal(first) {
		t.Fatalf("alarm after a restart %+v, want the one seen before, not now", b)
	}
}

// TestReplayedRowNotWrittenTwice: a network guard event still in the ring
// at start whose row the dead daemon wrote is counted as recorded and
// acknowledged, and gets no second row; one without a row gets it.
func TestReplayedRowNotWrittenTwice(t *testing.T) {
	dir := t.TempDir()
	k := &fakeKernel{counts: map[string]uint64{}, events: make(chan enforce.Event)}
	m := counterManager(t, dir, k)
	ev := enforce.Event{Source: "netguard", Seq: 41, CgroupID: 9, PID: 5, Cap: "net.connect", Object: "tcp 127.0.0.1:22", Errno: 134}
	m.recordEvents([]enforce.Event{ev}) // the daemon that died
	m.cfg.Chain.(*audit.Chain).Close()

	m2 := counterManager(t, dir, k)
	before, _ := m2.cfg.Chain.Head()
	var acks atomic.Int32
	again, fresh := ev, ev
	again.Replayed, again.Ack = true, func() { acks.Add(1) }
	fresh.Replayed, fresh.Seq, fresh.Ack = true, 42, func() { acks.Add(1) }
	m2.recordEvents([]enforce.Event{again, fresh})
	after, _ := m2.cfg.Chain.Head()
	if after != before+1 || acks.Load() != 2 || m2.raw().chain["netguard"] != 2 {
		t.Fatalf("chain %d → %d rows, %d acks, chain count %d; want one new row, 2 acks, 2 counted",
			before, after, acks.Load(), m2.raw().chain["netguard"])
	}
	rows, err := m2.cfg.Chain.Query(audit.Query{Type: "cap.deny"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0].KSeq != 41 || rows[1].KSeq != 42 {
		t.Fatalf("deny rows %+v, want kseq 41 then 42", rows)
	}
}
