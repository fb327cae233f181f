package fairq

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestVictimWaitsOneTurn: one key floods from many goroutines, another
// enters now and then; no entry waits for more than one other key's turn
// (each key may have one entry waiting, as a supervisor serving one agent
// has), and the flooder is served all along, far more often than the
// victim.
func TestVictimWaitsOneTurn(t *testing.T) {
	const flooders, victimOps = 8, 200
	g := NewGate(1, 1, 1)
	var flooded atomic.Uint64
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range flooders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				rel, err := g.Enter(ctx, 1)
				if err != nil {
					time.Sleep(time.Microsecond) // ErrBusy: its own queue is full
					continue
				}
				flooded.Add(1)
				time.Sleep(20 * time.Microsecond) // work under the turn
				rel()
			}
		}()
	}
	for range victimOps {
		rel, err := g.Enter(context.Background(), 2)
		if err != nil {
			t.Fatal(err)
		}
		rel()
		time.Sleep(50 * time.Microsecond)
	}
	stop()
	wg.Wait()
	s := g.Stats()
	if s.MaxTurnsWaited > 1 {
		t.Errorf("an entry waited for %d other turns, want ≤ 1 with two keys", s.MaxTurnsWaited)
	}
	if n := flooded.Load(); n < 2*victimOps || s.Busy == 0 || s.Waited == 0 {
		t.Errorf("flooder turns %d, stats %+v: the flooder was not flooding", n, s)
	}
	if s.Keys != 0 || s.Waiting != 0 {
		t.Errorf("after everyone left: %+v, want no key and no waiter", s)
	}
}

// TestBoundedPerKey: past perKey waiting entries a key is refused at once
// (ErrBusy) and holds no more memory; another key still gets its turn
// before the flooder's queued ones.
func TestBoundedPerKey(t *testing.T) {
	g := NewGate(1, 1, 4)
	hold, err := g.Enter(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	var order []uint64
	var mu sync.Mutex
	var wg sync.WaitGroup
	busy := atomic.Int64{}
	enter := func(key uint64) {
		defer wg.Done()
		rel, err := g.Enter(context.Background(), key)
		if errors.Is(err, ErrBusy) {
			busy.Add(1)
			return
		}
		if err != nil {
			t.Error(err)
			return
		}
		mu.Lock()
		order = append(order, key)
		mu.Unlock()
		rel()
	}
	for range 100 {
		wg.Add(1)
		go enter(1)
	}
	waitFor(t, func() bool { s := g.Stats(); return s.Waiting == 4 && busy.Load() == 96 })
	wg.Add(1)
	go enter(2)
	waitFor(t, func() bool { return g.Stats().Waiting == 5 })
	if s := g.Stats(); s.Keys != 2 || s.Busy != 96 {
		t.Errorf("stats %+v, want 2 keys and 96 refused", s)
	}
	hold()
	wg.Wait()
	// Key 1's lane was first in the ring: one of its turns, then key 2's.
	if len(order) != 5 || order[1] != 2 {
		t.Errorf("turn order %v, want key 2 second of 5", order)
	}
	if s := g.Stats(); s.Keys != 0 || s.MaxTurnsWaited > 4 {
		t.Errorf("stats %+v, want no key left and at most 4 turns waited", s)
	}
}

// TestFreeTurnsDoNotWait: below the slot count nobody waits.
func TestFreeTurnsDoNotWait(t *testing.T) {
	g := NewGate(3, 1, 1)
	var rels []func()
	for k := range uint64(3) {
		rel, err := g.Enter(context.Background(), k)
		if err != nil {
			t.Fatal(err)
		}
		rels = append(rels, rel)
	}
	if s := g.Stats(); s.Waited != 0 || s.Keys != 3 {
		t.Errorf("stats %+v, want nobody waited and 3 keys holding", s)
	}
	for _, r := range rels {
		r()
		r() // a second release does nothing
	}
	if _, err := g.Enter(context.Background(), 9); err != nil {
		t.Fatal(err)
	}
	if s := g.Stats(); s.Keys != 1 {
		t.Errorf("stats %+v: double releases must not free extra turns", s)
	}
}

// TestCancelAndClose: a waiter whose context ends leaves the queue and
// the turn goes to the next one; Close wakes waiters with ErrClosed and
// refuses new entries, while a held turn stays valid.
func TestCancelAndClose(t *testing.T) {
	g := NewGate(1, 1, 2)
	hold, err := g.Enter(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	gone := make(chan error, 1)
	go func() {
		_, err := g.Enter(ctx, 2)
		gone <- err
	}()
	waitFor(t, func() bool { return g.Stats().Waiting == 1 })
	cancel()
	if err := <-gone; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled waiter: %v, want context.Canceled", err)
	}
	if s := g.Stats(); s.Waiting != 0 || s.Keys != 1 {
		t.Errorf("after cancel: %+v, want only the holder", s)
	}
	closed := make(chan error, 1)
	go func() {
		_, err := g.Enter(context.Background(), 3)
		closed <- err
	}()
	waitFor(t, func() bool { return g.Stats().Waiting == 1 })
	g.Close()
	if err := <-closed; !errors.Is(err, ErrClosed) {
		t.Errorf("waiter at Close: %v, want ErrClosed", err)
	}
	if _, err := g.Enter(context.Background(), 4); !errors.Is(err, ErrClosed) {
		t.Errorf("Enter after Close: %v, want ErrClosed", err)
	}
	hold()
	if s := g.Stats(); s.Keys != 0 || s.Waiting != 0 {
		t.Errorf("after the last release: %+v", s)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 10 s")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestHeldPerKey: a key holding all it may waits even while turns are
// free, and those stay for the other keys.
func TestHeldPerKey(t *testing.T) {
	g := NewGate(3, 1, 4)
	hold, err := g.Enter(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	second := make(chan func(), 1)
	go func() {
		rel, err := g.Enter(context.Background(), 1)
		if err != nil {
			t.Error(err)
		}
		second <- rel
	}()
	waitFor(t, func() bool { return g.Stats().Waiting == 1 })
	for k := range uint64(2) {
		rel, err := g.Enter(context.Background(), 10+k)
		if err != nil {
			t.Fatal(err)
		}
		defer rel()
	}
	if s := g.Stats(); s.Waiting != 1 || s.Keys != 3 {
		t.Errorf("stats %+v, want key 1's second entry still waiting beside 3 holders", s)
	}
	hold()
	rel := <-second
	rel()
}

// TestHeldBy: the per-key limit HeldBy gives replaces NewGate's.
func TestHeldBy(t *testing.T) {
	g := NewGate(4, 1, 4).HeldBy(func(key uint64) int { return int(key) })
	var rels []func()
	for range 2 {
		rel, err := g.Enter(context.Background(), 2)
		if err != nil {
			t.Fatal(err)
		}
		rels = append(rels, rel)
	}
	third := make(chan func(), 1)
	go func() {
		rel, err := g.Enter(context.Background(), 2)
		if err != nil {
			t.Error(err)
		}
		third <- rel
	}()
	waitFor(t, func() bool { return g.Stats().Waiting == 1 })
	rel, err := g.Enter(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if s := g.Stats(); s.Waiting != 1 {
		t.Errorf("stats %+v: key 2's third entry should wait, key 1's first not", s)
	}
	rels[0]()
	(<-third)()
	rels[1]()
	rel()
}

// TestBacklogged: a key is backlogged only while it has entries waiting
// and another key had a turn recently; alone, or asking for no more than
// it may hold, it is not.
func TestBacklogged(t *testing.T) {
	g := NewGate(2, 1, 4)
	hold, err := g.Enter(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if g.Backlogged(1, time.Hour) {
		t.Error("a key holding its one turn, nothing waiting: backlogged")
	}
	second := make(chan func(), 1)
	go func() {
		rel, err := g.Enter(context.Background(), 1)
		if err != nil {
			t.Error(err)
		}
		second <- rel
	}()
	waitFor(t, func() bool { return g.Stats().Waiting == 1 })
	if g.Backlogged(1, time.Hour) {
		t.Error("a key alone, with an entry waiting: backlogged")
	}
	other, err := g.Enter(context.Background(), 2)
	if err != nil {
		t.Fatal(err)
	}
	other()
	if !g.Backlogged(1, time.Hour) {
		t.Error("a key with an entry waiting while another key had a turn: not backlogged")
	}
	if g.Backlogged(2, time.Hour) {
		t.Error("the other key, nothing waiting: backlogged")
	}
	time.Sleep(2 * time.Millisecond)
	if g.Backlogged(1, time.Millisecond) {
		t.Error("the other key's turn is older than the window: still backlogged")
	}
	hold()
	(<-second)()
}

// TestEnterFor: a turn taken with EnterFor goes back after its hold
// though release was not called, so another key gets it; releasing
// afterwards (twice) frees nothing more.
func TestEnterFor(t *testing.T) {
	g := NewGate(1, 1, 4)
	rel, err := g.EnterFor(context.Background(), 1, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	other, err := g.Enter(context.Background(), 2)
	if err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited < 25*time.Millisecond {
		t.Errorf("key 2 admitted after %s, before key 1's hold ran out", waited)
	}
	rel()
	rel()
	// Key 2 holds the only turn: key 3 must still wait.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if _, err := g.Enter(ctx, 3); err == nil {
		t.Fatal("key 1's late release freed a second turn")
	}
	other()
}
