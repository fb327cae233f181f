package broker

import (
	"context"
	"errors"
	"testing"
	"time"
)

// testSched returns a scheduler with a frozen clock.
func testSched(t *testing.T, cfg Config) (*scheduler, *time.Time) {
	t.Helper()
	cfg, err := withDefaults(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hr := newHookRunner(Hooks{})
	t.Cleanup(hr.close)
	s := newScheduler(cfg, hr)
	now := time.Unix(1000, 0)
	s.now = func() time.Time { return now }
	s.started = now
	return s, &now
}

func mustEnqueue(t *testing.T, s *scheduler, aid uint64, prompt, maxTok int64) *waiter {
	t.Helper()
	w, err := s.enqueue(Tenant{AID: aid}, prompt, maxTok)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func admitted(w *waiter) bool {
	select {
	case err := <-w.ready:
		w.ready <- err // put back for later checks
		return err == nil
	default:
		return false
	}
}

// Both policies see the same arrivals: A (a heavy tenant) runs A1 and
// queues A2, then B arrives. VTC lifts B to A's counter (so B banks no
// credit for having been idle) and serves the smaller counter first; FIFO
// serves A2, the earlier arrival.
func TestSchedulerOrder(t *testing.T) {
	tests := []struct {
		policy    string
		wantFirst string
	}{
		{PolicyVTC, "B1"},
		{PolicyFIFO, "A2"},
	}
	for _, tt := range tests {
		t.Run(tt.policy, func(t *testing.T) {
			s, _ := testSched(t, Config{Policy: tt.policy, Slots: 1, Headroom: -1})
			a1 := mustEnqueue(t, s, 1, 10, 100)
			if !admitted(a1) {
				t.Fatal("A1 not admitted into a free slot")
			}
			if got := s.tenants[1].counter; got != 10 {
				t.Fatalf("A counter after admission = %v, want 10 (prompt charged)", got)
			}
			s.charge(a1, 5)
			a2 := mustEnqueue(t, s, 1, 10, 100)
			b1 := mustEnqueue(t, s, 2, 5, 100)
			if got, want := s.tenants[2].counter, s.tenants[1].counter; got != want || want != 15 {
				t.Fatalf("B counter on becoming backlogged = %v, want lifted to A's %v (15)", got, want)
			}
			s.charge(a1, 46) // the rest of A1's output streams while B waits
			if admitted(a2) || admitted(b1) {
				t.Fatal("dispatched with no free slot")
			}
			s.release(a1, 10, 51)
			first, second := a2, b1
			if tt.wantFirst == "B1" {
				first, second = b1, a2
			}
			if !admitted(first) || admitted(second) {
				t.Fatalf("%s: want %s dispatched first", tt.policy, tt.wantFirst)
			}
		})
	}
}

// A newly backlogged tenant with no one else backlogged starts at the
// counter of the last tenant served, not at its own stale (low) counter.
func TestSchedulerLiftToLastServed(t *testing.T) {
	s, _ := testSched(t, Config{Slots: 4, Headroom: -1})
	a := mustEnqueue(t, s, 1, 40, 10)
	s.release(a, 40, 10)
	b := mustEnqueue(t, s, 2, 1, 10)
	if got := s.tenants[2].counter; got != 40+1 {
		t.Fatalf("B counter = %v, want lastServed 40 + its prompt 1", got)
	}
	s.release(b, 1, 0)
}

func TestSchedulerWeight(t *testing.T) {
	s, _ := testSched(t, Config{Slots: 4, Headroom: -1})
	w, err := s.enqueue(Tenant{AID: 7, Weight: 200}, 10, 10)
	if err != nil {
		t.Fatal(err)
	}
	s.charge(w, 10)
	if got := s.tenants[7].counter; got != 10 {
		t.Fatalf("counter = %v, want (10 in + 10 out) / weight 2 = 10", got)
	}
	s.release(w, 10, 10)
}

// The headroom rule: a tenant above its fair share may not take the last
// Headroom slots while another tenant is active; alone it may take all.
func TestSchedulerHeadroom(t *testing.T) {
	tests := []struct {
		name       string
		othersIdle time.Duration // how long ago B last sent a request
		wantA      int           // A's requests in flight
	}{
		{"other active", 0, 3},
		{"other gone quiet", time.Hour, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, now := testSched(t, Config{Slots: 4, Headroom: 1, ActiveWindow: time.Minute})
			b0 := mustEnqueue(t, s, 2, 1, 1)
			s.release(b0, 1, 1)
			*now = now.Add(tt.othersIdle)
			var as []*waiter
			for range 6 {
				as = append(as, mustEnqueue(t, s, 1, 1, 1))
			}
			n := 0
			for _, w := range as {
				if admitted(w) {
					n++
				}
			}
			if n != tt.wantA {
				t.Fatalf("A in flight = %d, want %d", n, tt.wantA)
			}
			if tt.wantA < 4 {
				b1 := mustEnqueue(t, s, 2, 1, 1)
				if !admitted(b1) {
					t.Fatal("B found no headroom slot")
				}
			}
		})
	}
}

func TestSchedulerContextPool(t *testing.T) {
	s, _ := testSched(t, Config{Slots: 8, ContextTokens: 100, Headroom: -1})
	a := mustEnqueue(t, s, 1, 10, 50)
	b := mustEnqueue(t, s, 2, 10, 50) // 60 + 60 > 100
	if !admitted(a) || admitted(b) {
		t.Fatal("context pool overcommitted")
	}
	s.release(a, 10, 5)
	if !admitted(b) {
		t.Fatal("B not dispatched once the pool freed")
	}
	if _, err := s.enqueue(Tenant{AID: 3}, 60, 41); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("request larger than the pool: err = %v, want ErrBadRequest", err)
	}
}

// A client that leaves while queued frees its place and holds nothing.
func TestSchedulerCancelQueued(t *testing.T) {
	s, _ := testSched(t, Config{Slots: 1, Headroom: -1})
	a := mustEnqueue(t, s, 1, 10, 10)
	ctx, cancel := context.WithCancel(context.Background())
	b, err := s.enqueue(Tenant{AID: 2, TokenLimit: 1000}, 10, 10)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := s.wait(ctx, b); !errors.Is(err, context.Canceled) {
		t.Fatalf("wait = %v, want context.Canceled", err)
	}
	if s.queued != 0 || s.tenants[2].queue.len != 0 || s.tenants[2].reserved != 0 {
		t.Fatalf("queued %d, B queue %d, B reserved %d: want all 0", s.queued, s.tenants[2].queue.len, s.tenants[2].reserved)
	}
	s.release(a, 10, 10)
	if s.inflight != 0 || s.ctxUsed != 0 {
		t.Fatalf("in flight %d, context %d after all done", s.inflight, s.ctxUsed)
	}
}

// A light tenant is not held back from the headroom while a heavier
// tenant holds more slots; just after start a lone tenant keeps the
// headroom free for tenants that have not spoken yet.
func TestSchedulerHeadroomHolders(t *testing.T) {
	s, now := testSched(t, Config{Slots: 8, Headroom: 2, ActiveWindow: time.Minute})
	for range 10 {
		mustEnqueue(t, s, 1, 1, 1)
	}
	if s.tenants[1].inflight != 6 {
		t.Fatalf("lone tenant at start holds %d slots, want 8-2", s.tenants[1].inflight)
	}
	light := []*waiter{mustEnqueue(t, s, 2, 1, 1), mustEnqueue(t, s, 2, 1, 1)}
	for i, w := range light {
		if !admitted(w) {
			t.Fatalf("light request %d not admitted though it holds fewer slots than the flooder", i)
		}
	}
	if s.inflight != 8 || s.tenants[1].inflight != 6 {
		t.Fatalf("in flight %d (flooder %d)", s.inflight, s.tenants[1].inflight)
	}
	*now = now.Add(time.Hour) // everyone quiet; the flooder alone may take all
	s.release(light[0], 1, 1)
	s.release(light[1], 1, 1)
	if s.tenants[1].inflight != 8 {
		t.Fatalf("lone flooder after the window holds %d, want 8", s.tenants[1].inflight)
	}
}
