package fairq

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"
)

// Sentinel errors of Enter.
var (
	ErrBusy   = errors.New("fairq: too many requests waiting for this key")
	ErrClosed = errors.New("fairq: gate closed")
)

// Gate is a counting semaphore whose waiters are served round robin per
// key. The zero Gate is not usable; make one with NewGate.
type Gate struct {
	mu      sync.Mutex
	free    int
	maxHeld int                  // turns one key may hold at once
	heldBy  func(key uint64) int // per key, instead of maxHeld (HeldBy)
	perKey  int                  // entries one key may have waiting
	lanes   map[uint64]*lane     // keys that hold or wait for a turn
	ring    []*lane              // keys with waiters, in turn order
	grants  uint64               // turns handed out so far
	closed  bool
	waited  uint64        // entries that had to wait
	maxTurn uint64        // most turns handed to others while one entry waited
	busy    uint64        // entries refused with ErrBusy
	done    chan struct{} // closed by Close

	// The last two distinct keys granted a turn, and when (Backlogged).
	lastKey, prevKey uint64
	lastAt, prevAt   time.Time
}

type lane struct {
	key     uint64
	held    int
	maxHeld int // turns it may hold at once
	waiters []*waiter
	inRing  bool
}

type waiter struct {
	ready   chan struct{} // closed when granted
	granted bool
	at      uint64 // g.grants when it started waiting
}

// Stats are a Gate's running totals.
type Stats struct {
	Keys    int    // keys holding or waiting for a turn now
	Waiting int    // entries waiting now
	Waited  uint64 // entries that had to wait for a turn
	Busy    uint64 // entries refused because their key had too many waiting
	// MaxTurnsWaited is the most turns handed to other entries while one
	// entry waited: with k keys waiting at once and one waiter each, at
	// most k-1 (round robin), whatever one key asks.
	MaxTurnsWaited uint64
}

// NewGate admits slots holders at once (at least 1), at most held of them
// of one key (at least 1; a key holding that many waits even while turns
// are free, so that the free ones stay for the other keys), and at most
// waiting entries of one key waiting (at least 1).
func NewGate(slots, held, waiting int) *Gate {
	return &Gate{free: max(slots, 1), maxHeld: max(held, 1), perKey: max(waiting, 1), lanes: map[uint64]*lane{}, done: make(chan struct{})}
}

// HeldBy makes f say how many turns each key may hold at once (at least
// 1), instead of NewGate's held; call it before the Gate is used.
func (g *Gate) HeldBy(f func(key uint64) int) *Gate {
	g.heldBy = f
	return g
}

// Enter waits for a turn for key and returns the function that gives it
// back (call it once; later calls do nothing). It fails with ErrBusy when
// key already has perKey entries waiting, ErrClosed after Close, or the
// context's error.
// EnterFor is Enter whose turn is given back after at most hold even if
// release is not called by then: a caller that blocks (a slow client, a
// path on a hung filesystem) goes on without its turn instead of keeping
// every other key waiting. release stays safe to call, once or more.
func (g *Gate) EnterFor(ctx context.Context, key uint64, hold time.Duration) (release func(), err error) {
	give, err := g.Enter(ctx, key)
	if err != nil {
		return nil, err
	}
	var once sync.Once
	giveOnce := func() { once.Do(give) }
	t := time.AfterFunc(hold, giveOnce)
	return func() { t.Stop(); giveOnce() }, nil
}

func (g *Gate) Enter(ctx context.Context, key uint64) (release func(), err error) {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return nil, ErrClosed
	}
	l := g.lanes[key]
	if l == nil {
		l = &lane{key: key, maxHeld: g.maxHeld}
		if g.heldBy != nil {
			l.maxHeld = max(g.heldBy(key), 1)
		}
		g.lanes[key] = l
	}
	// A free turn is taken at once: while one is free, every key still
	// waiting holds all it may (dispatchLocked runs whenever a turn is
	// freed), so a newcomer overtakes no one who could have it.
	if g.free > 0 && l.held < l.maxHeld {
		g.free--
		g.grantLocked(l)
		g.mu.Unlock()
		return g.releaser(l), nil
	}
	if len(l.waiters) >= g.perKey {
		g.busy++
		g.dropIdleLocked(l)
		g.mu.Unlock()
		return nil, ErrBusy
	}
	w := &waiter{ready: make(chan struct{}), at: g.grants}
	l.waiters = append(l.waiters, w)
	if !l.inRing {
		l.inRing = true
		g.ring = append(g.ring, l)
	}
	g.waited++
	g.mu.Unlock()

	select {
	case <-w.ready:
		return g.releaser(l), nil
	case <-ctx.Done():
	case <-g.done:
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	err = ctx.Err()
	if g.closed {
		err = ErrClosed
	}
	if w.granted {
		// Granted while the context ended: pass the turn on.
		g.releaseLocked(l)
		return nil, err
	}
	g.removeLocked(l, w)
	return nil, err
}

func (g *Gate) grantLocked(l *lane) {
	l.held++
	g.grants++
	now := time.Now()
	if l.key != g.lastKey {
		g.prevKey, g.prevAt = g.lastKey, g.lastAt
	}
	g.lastKey, g.lastAt = l.key, now
}

// Backlogged reports whether key has entries waiting for a turn while
// another key was granted one within the last within: a caller asking
// for more than its turns while others are served. The daemon paces such
// a key (internal/server, admit.go); a key alone, or one that asks for
// no more than it may hold, is never backlogged.
func (g *Gate) Backlogged(key uint64, within time.Duration) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	l := g.lanes[key]
	if l == nil || len(l.waiters) == 0 {
		return false
	}
	now := time.Now()
	recent := func(k uint64, at time.Time) bool { return k != key && !at.IsZero() && now.Sub(at) < within }
	return recent(g.lastKey, g.lastAt) || recent(g.prevKey, g.prevAt)
}

func (g *Gate) releaser(l *lane) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock()
			g.releaseLocked(l)
			g.mu.Unlock()
		})
	}
}

// releaseLocked gives l's turn back and hands the free turns on.
func (g *Gate) releaseLocked(l *lane) {
	l.held--
	g.free++
	g.dispatchLocked()
	g.dropIdleLocked(l)
}

// dispatchLocked hands free turns to waiters: to the first key in the
// ring that may hold one more, its oldest waiter; the key goes to the
// ring's end if it still has waiters (round robin), while keys that hold
// all they may keep their place.
func (g *Gate) dispatchLocked() {
	for g.free > 0 {
		i := slices.IndexFunc(g.ring, func(l *lane) bool { return len(l.waiters) > 0 && l.held < l.maxHeld })
		if i < 0 {
			return
		}
		next := g.ring[i]
		g.ring = slices.Delete(g.ring, i, i+1)
		w := next.waiters[0]
		next.waiters = next.waiters[1:]
		if len(next.waiters) > 0 {
			g.ring = append(g.ring, next)
		} else {
			next.inRing = false
		}
		if d := g.grants - w.at; d > g.maxTurn {
			g.maxTurn = d
		}
		g.free--
		g.grantLocked(next)
		w.granted = true
		close(w.ready)
	}
}

// removeLocked forgets a waiter whose context ended before its turn.
func (g *Gate) removeLocked(l *lane, w *waiter) {
	for i, x := range l.waiters {
		if x == w {
			l.waiters = append(l.waiters[:i], l.waiters[i+1:]...)
			break
		}
	}
	if len(l.waiters) == 0 && l.inRing {
		if i := slices.Index(g.ring, l); i >= 0 {
			g.ring = slices.Delete(g.ring, i, i+1)
		}
		l.inRing = false
	}
	g.dropIdleLocked(l)
}

// dropIdleLocked forgets a key that neither holds nor waits for a turn,
// so memory follows what is in use, not every key ever seen.
func (g *Gate) dropIdleLocked(l *lane) {
	if l.held == 0 && len(l.waiters) == 0 && !l.inRing && g.lanes[l.key] == l {
		delete(g.lanes, l.key)
	}
}

// Close refuses new entries and wakes every waiter with ErrClosed; turns
// already held stay valid until released.
func (g *Gate) Close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.closed {
		g.closed = true
		close(g.done)
	}
}

// Stats returns the running totals.
func (g *Gate) Stats() Stats {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, l := range g.ring {
		n += len(l.waiters)
	}
	return Stats{Keys: len(g.lanes), Waiting: n, Waited: g.waited, Busy: g.busy, MaxTurnsWaited: g.maxTurn}
}
