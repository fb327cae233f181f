package state

import (
	"errors"
	"fmt"
)

// State is one of the eight agent states. The strings are the wire and CLI
// contract (docs/cli.md); do not rename them.
type State string

const (
	Spawning          State = "Spawning"
	Attested          State = "Attested"
	Active            State = "Active"
	InferenceBlocked  State = "Inference-blocked"
	CapabilityDenied  State = "Capability-denied"
	Quarantined       State = "Quarantined"
	TerminatedClean   State = "Terminated-clean"
	TerminatedRevoked State = "Terminated-revoked"
)

// All lists the states in lifecycle order.
var All = []State{Spawning, Attested, Active, InferenceBlocked, CapabilityDenied, Quarantined, TerminatedClean, TerminatedRevoked}

var (
	// ErrIllegalTransition is matched by every *TransitionError.
	ErrIllegalTransition = errors.New("illegal state transition")
	// ErrUnknownState is returned by Parse for a string that names no state.
	ErrUnknownState = errors.New("unknown state")
)

// transitions is the lifecycle as data: from → the states it may move to.
// A running agent (Active, Inference-blocked, Capability-denied) moves freely
// between the running states and to quarantine or termination; the two
// terminal states lead nowhere. Spawning may end revoked (spawn failed or was
// refused after the cgroup existed) and Attested likewise, but an agent never
// becomes Active without having been Attested.
var transitions = map[State][]State{
	Spawning:          {Attested, TerminatedRevoked},
	Attested:          {Active, TerminatedClean, TerminatedRevoked},
	Active:            {InferenceBlocked, CapabilityDenied, Quarantined, TerminatedClean, TerminatedRevoked},
	InferenceBlocked:  {Active, CapabilityDenied, Quarantined, TerminatedClean, TerminatedRevoked},
	CapabilityDenied:  {Active, InferenceBlocked, Quarantined, TerminatedClean, TerminatedRevoked},
	Quarantined:       {Active, TerminatedClean, TerminatedRevoked},
	TerminatedClean:   nil,
	TerminatedRevoked: nil,
}

// TransitionError says which move was refused.
type TransitionError struct{ From, To State }

func (e *TransitionError) Error() string {
	return fmt.Sprintf("illegal state transition %s → %s", e.From, e.To)
}

func (e *TransitionError) Is(target error) bool { return target == ErrIllegalTransition }

// Transition checks that from → to is in the table.
func Transition(from, to State) error {
	for _, s := range transitions[from] {
		if s == to {
			return nil
		}
	}
	return &TransitionError{From: from, To: to}
}

// Next lists the states reachable from s in one step.
func Next(s State) []State { return append([]State(nil), transitions[s]...) }

// Terminal reports whether s ends the agent's life.
func (s State) Terminal() bool { return s == TerminatedClean || s == TerminatedRevoked }

// Running reports whether the agent's processes may be executing.
func (s State) Running() bool {
	return s == Active || s == InferenceBlocked || s == CapabilityDenied
}

// Valid reports whether s is one of the eight states.
func (s State) Valid() bool { _, ok := transitions[s]; return ok }

// Parse turns a string into a State, refusing anything else.
func Parse(s string) (State, error) {
	if st := State(s); st.Valid() {
		return st, nil
	}
	return "", fmt.Errorf("%w: %q", ErrUnknownState, s)
}
