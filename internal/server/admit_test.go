package server

import (
	"context"
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/coconut-os/coconut/api"
	"github.com/coconut-os/coconut/internal/agent"
	"github.com/coconut-os/coconut/internal/fairq"
)

// TestAdmitPerCaller: with one turn held, a caller past its waiting bound
// is told the daemon is busy (503) at once, another caller queues, and
// streams are never held back.
func TestAdmitPerCaller(t *testing.T) {
	s := &Server{turns: fairq.NewGate(1, 1, 1)}
	flooder, victim := agent.Caller{UID: 0, AID: 7}, agent.Caller{UID: 0}
	if callerKey(flooder) == callerKey(victim) {
		t.Fatal("an agent and its user share a key")
	}
	req := httptest.NewRequest("GET", "/v1/agents", nil)
	hold, err := s.admit(req, flooder)
	if err != nil {
		t.Fatal(err)
	}
	waiting := make(chan error, 1)
	go func() {
		rel, err := s.admit(req, flooder)
		if err == nil {
			rel()
		}
		waiting <- err
	}()
	for s.turns.Stats().Waiting != 1 {
		time.Sleep(time.Millisecond)
	}
	if _, err := s.admit(req, flooder); !errors.Is(err, api.ErrUnavailable) {
		t.Errorf("third call of one caller: %v, want ErrUnavailable (busy)", err)
	}
	stream := httptest.NewRequest("GET", "/v1/events", nil)
	if rel, err := s.admit(stream, flooder); err != nil {
		t.Errorf("event stream: %v, want admitted at once", err)
	} else {
		rel()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := s.admit(req.WithContext(ctx), victim); !errors.Is(err, api.ErrUnavailable) {
		t.Errorf("victim whose client gave up: %v, want not admitted", err)
	}
	hold()
	if err := <-waiting; err != nil {
		t.Errorf("queued call: %v", err)
	}
}

// TestAdmitBounded: a call that keeps its turn past maxHold (a slow body,
// a slow reader) gives it back, so another caller is admitted; `follow`
// skips the turns only on the routes that stream.
func TestAdmitBounded(t *testing.T) {
	s := &Server{turns: fairq.NewGate(1, 1, 4)}
	slow, other := agent.Caller{UID: 1000, AID: 7}, agent.Caller{UID: 0}
	req := httptest.NewRequest("POST", "/v1/agents", nil)
	hold, err := s.admit(req, slow)
	if err != nil {
		t.Fatal(err)
	}
	defer hold()
	start := time.Now()
	rel, err := s.admit(req, other)
	if err != nil {
		t.Fatalf("other caller behind a held turn: %v", err)
	}
	rel()
	if waited := time.Since(start); waited < maxHold/2 || waited > maxHold+time.Second {
		t.Errorf("other caller admitted after %s, want about maxHold (%s)", waited, maxHold)
	}
	hold() // twice (the timer gave it back already): no second release
	if st := s.turns.Stats(); st.Waiting != 0 {
		t.Errorf("after both released: %+v", st)
	}

	// With the turn held, ?follow on a route that does not stream waits.
	hold2, err := s.admit(req, slow)
	if err != nil {
		t.Fatal(err)
	}
	defer hold2()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	for _, path := range []string{"/v1/agents?follow=1", "/v1/agents/7?follow=x"} {
		if _, err := s.admit(httptest.NewRequest("GET", path, nil).WithContext(ctx), other); err == nil {
			t.Errorf("GET %s: admitted past the turns", path)
		}
	}
	for _, path := range []string{"/v1/audit?follow=1", "/v1/agents/7/logs?follow=1"} {
		rel, err := s.admit(httptest.NewRequest("GET", path, nil), other)
		if err != nil {
			t.Errorf("GET %s: %v, want a stream admitted at once", path, err)
			continue
		}
		rel()
	}
}
