package broker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
)

// A revoke or a quarantine while a request waits in the queue stops it:
// it never reaches the backend, the agent gets an audited 403 and the
// reservation is released.
func TestRecheckAfterQueue(t *testing.T) {
	tests := []struct {
		name string
		// hook is Hooks.Recheck (nil: Identify again); revoke makes the
		// agent's next check fail.
		hook   func(revoked *atomic.Bool) func(uint64, string) error
		revoke func(h *harness, revoked *atomic.Bool)
	}{
		{
			name:   "identify again: capability revoked",
			revoke: func(h *harness, _ *atomic.Bool) { h.tenantRaw(Tenant{AID: 2}) },
		},
		{
			name: "identify again: model no longer allowed",
			revoke: func(h *harness, _ *atomic.Bool) {
				h.tenantRaw(Tenant{AID: 2, Models: func(m string) bool { return m == "other" }})
			},
		},
		{
			name: "recheck hook: quarantined",
			hook: func(revoked *atomic.Bool) func(uint64, string) error {
				return func(aid uint64, _ string) error {
					if aid == 2 && revoked.Load() {
						return fmt.Errorf("agent %d is Quarantined", aid)
					}
					return nil
				}
			},
			revoke: func(_ *harness, revoked *atomic.Bool) { revoked.Store(true) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var revoked atomic.Bool
			g := newGate(1)
			hooks := Hooks{}
			if tt.hook != nil {
				hooks.Recheck = tt.hook(&revoked)
			}
			h := newHarness(t, Config{Slots: 1, Backend: g}, hooks)
			h.tenant(Tenant{AID: 1})
			h.tenant(Tenant{AID: 2})
			first := make(chan int, 1)
			go func() {
				st, _, _ := h.post(context.Background(), 1, "/v1/chat/completions", chatBody(9, false, ""))
				first <- st
			}()
			<-g.started
			second := make(chan string, 1)
			go func() {
				st, body, err := h.post(context.Background(), 2, "/v1/chat/completions", chatBody(9, true, ""))
				second <- fmt.Sprintf("%d %s %v", st, body, err)
			}()
			for h.b.Stats().Queued != 1 {
				runtimeGosched()
			}
			tt.revoke(h, &revoked)
			close(g.release)
			if st := <-first; st != 200 {
				t.Fatalf("first request %d", st)
			}
			if got := <-second; !strings.HasPrefix(got, "403 ") || strings.Contains(got, "choices") {
				t.Fatalf("queued request after the revoke: %s", got)
			}
			if n := len(g.started); n != 0 {
				t.Fatalf("%d revoked requests reached the backend", n)
			}
			for _, a := range h.b.Stats().Agents {
				if a.Reserved != 0 || a.InFlight != 0 || a.TokensIn+a.TokensOut != 0 && a.AID == 2 {
					t.Fatalf("agent %d after the refusal: %+v", a.AID, a)
				}
			}
			var denied int
			for _, c := range h.auditRows() {
				if c.AID == 2 {
					if c.Result != ResultDenied || c.Status != 403 {
						t.Fatalf("agent 2 row %+v, want only a denied 403", c)
					}
					denied++
				}
			}
			if denied != 1 {
				t.Fatalf("%d denied rows for agent 2, want 1", denied)
			}
		})
	}
}

// One agent's flood cannot fill the shared queue: past its own cap it gets
// busy, while another agent still queues.
func TestSchedulerQueuePerAgent(t *testing.T) {
	s, _ := testSched(t, Config{Slots: 1, MaxQueuePerAgent: 2})
	mustEnqueue(t, s, 1, 1, 1) // runs
	mustEnqueue(t, s, 1, 1, 1)
	mustEnqueue(t, s, 1, 1, 1)
	if _, err := s.enqueue(Tenant{AID: 1}, 1, 1); !errors.Is(err, ErrBusy) {
		t.Fatalf("third queued request of one agent: %v, want ErrBusy", err)
	}
	for range 2 {
		mustEnqueue(t, s, 2, 1, 1)
	}
	if s.queued != 4 {
		t.Fatalf("%d queued, want 4", s.queued)
	}
}

func TestQueueCapDefaults(t *testing.T) {
	tests := []struct {
		name            string
		queue, perAgent int
		want            int
	}{
		{"defaults", 0, 0, 256},
		{"capped by the global queue", 100, 0, 100},
		{"explicit", 0, 7, 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := withDefaults(Config{MaxQueue: tt.queue, MaxQueuePerAgent: tt.perAgent})
			if err != nil {
				t.Fatal(err)
			}
			if cfg.MaxQueuePerAgent != tt.want || cfg.WriteTimeout <= 0 {
				t.Fatalf("per-agent cap %d (want %d), write timeout %v", cfg.MaxQueuePerAgent, tt.want, cfg.WriteTimeout)
			}
		})
	}
}
