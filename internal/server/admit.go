package server

import (
	"errors"
	"net/http"
	"runtime"
	"strings"
	"time"

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
	start := time.Now()
	err = call()
	if c.AID != 0 && s.turns.Backlogged(callerKey(c), paceWindow) {
		s.pace(r, min(time.Since(start), maxPace))
	}
	return err
}

// An agent asking for more than its turns while another caller is served
// (fairq.Gate.Backlogged: it has calls waiting, and another key had a
// turn within paceWindow) keeps its turn, idle, for as long as its call
// took (at most maxPace) before giving it back: its calls then take at
// most half of one turn's time, which leaves the CPUs it would take to the
// others (the turns alone only keep them from queueing behind it). A
// caller alone, a person, or an agent making one call at a time is never
// paced.
const (
	paceWindow = 100 * time.Millisecond
	maxPace    = 50 * time.Millisecond
)

// pace waits d, or until the caller hangs up.
func (s *Server) pace(r *http.Request, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
	}
}

// maxHold bounds how long one call keeps its turn: a caller that sends its
// body slowly, or reads a large answer slowly, would otherwise keep a turn
// for as long as it likes, and a few such callers (one user and two of its
// agents, on two CPUs) would hold every turn, the owner's `agent kill`
// included. Past maxHold the call goes on without its turn.
const maxHold = 2 * time.Second

// admit waits for c's turn. Streams (the event stream, a followed audit
// query, followed logs) are not admitted in turns: they hold their
// connection for as long as the client reads and cost nothing while idle.
// Only those routes: `follow` on any other is not a way past the turns.
func (s *Server) admit(r *http.Request, c agent.Caller) (release func(), err error) {
	if r.URL.Path == "/v1/events" || (r.URL.Query().Get("follow") != "" && streams(r)) {
		return func() {}, nil
	}
	release, err = s.turns.EnterFor(r.Context(), callerKey(c), maxHold)
	switch {
	case errors.Is(err, fairq.ErrBusy):
		return nil, api.Errorf(api.ErrUnavailable, "too many calls of yours are waiting (%d): retry later", perCallerWaiting)
	case err != nil:
		return nil, api.Errorf(api.ErrUnavailable, "call not admitted: %v", err)
	}
	return release, nil
}

// streams reports whether r is a GET of a route that follows: an audit
// query or an agent's logs.
func streams(r *http.Request) bool {
	if r.Method != http.MethodGet {
		return false
	}
	p := r.URL.Path
	return p == "/v1/audit" || (strings.HasPrefix(p, "/v1/agents/") && strings.HasSuffix(p, "/logs") && strings.Count(p, "/") == 4)
}
