package server

import (
	"errors"
	"net/http"
	"runtime"

	"github.com/coconut-os/coconut/api"
	"github.com/coconut-os/coconut/internal/agent"
	"github.com/coconut-os/coconut/internal/fairq"
)

// Calls are admitted in turns, per caller (issue 19.3): an agent is keyed
// on its AID, anyone else on their uid, so one caller flooding the socket
// waits for its own turns and another caller's call waits for at most one
// turn of each caller waiting beside it. Twice the CPUs' worth of calls
// (at least 4) run at once — more than the CPUs, as a call may wait on the
// disk or a process (a spawn) — so the turns matter only to a caller that
// makes many calls at once. An agent holds at most half the CPUs' worth
// of turns (at least one), so that a flooding agent keeps at most half of
// the daemon's CPUs busy and another caller's call finds a turn free at
// once; a person's (uid's) calls may hold half the turns, so that a slow
// call of theirs, a spawn, does not hold up their next one. A caller may
// have perCallerWaiting more waiting, past which it is told the daemon is
// busy (503, retry) rather than queued without bound.
const perCallerWaiting = 64

func newTurns() *fairq.Gate {
	slots, cpus := max(4, 2*runtime.GOMAXPROCS(0)), runtime.GOMAXPROCS(0)
	return fairq.NewGate(slots, slots/2, perCallerWaiting).HeldBy(func(key uint64) int {
		if key&uidKey == 0 {
			return max(1, cpus/2) // an agent
		}
		return slots / 2
	})
}

// uidKey marks the keys of callers that are not agents.
const uidKey = 1 << 63

// callerKey is the fair-share key of c: its AID, or its uid with the top
// bit set (AIDs never have it).
func callerKey(c agent.Caller) uint64 {
	if c.AID != 0 {
		return c.AID
	}
	return uidKey | uint64(c.UID)
}

// admitted runs call in c's turn, and gives the turn back however call
// ends.
func (s *Server) admitted(r *http.Request, c agent.Caller, call func() error) error {
	release, err := s.admit(r, c)
	if err != nil {
		return err
	}
	defer release()
	return call()
}

// admit waits for c's turn. Streams (the event stream, a followed audit
// query, followed logs) are not admitted in turns: they hold their
// connection for as long as the client reads and cost nothing while idle.
func (s *Server) admit(r *http.Request, c agent.Caller) (release func(), err error) {
	if r.URL.Path == "/v1/events" || r.URL.Query().Get("follow") != "" {
		return func() {}, nil
	}
	release, err = s.turns.Enter(r.Context(), callerKey(c))
	switch {
	case errors.Is(err, fairq.ErrBusy):
		return nil, api.Errorf(api.ErrUnavailable, "too many calls of yours are waiting (%d): retry later", perCallerWaiting)
	case err != nil:
		return nil, api.Errorf(api.ErrUnavailable, "call not admitted: %v", err)
	}
	return release, nil
}
