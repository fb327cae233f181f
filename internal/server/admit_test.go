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
