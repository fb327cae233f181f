package state

import (
	"errors"
	"testing"
)

func TestTransitions(t *testing.T) {
	tests := []struct {
		from, to State
		ok       bool
	}{
		{Spawning, Attested, true},
		{Attested, Active, true},
		{Spawning, Active, false}, // never Active without attestation
		{Active, Quarantined, true},
		{Quarantined, Active, true},
		{Active, TerminatedClean, true},
		{Active, TerminatedRevoked, true},
		{TerminatedClean, Active, false},
		{TerminatedRevoked, Spawning, false},
		{Active, Spawning, false},
		{Quarantined, InferenceBlocked, false},
		{CapabilityDenied, Active, true},
	}
	for _, tt := range tests {
		t.Run(string(tt.from)+"->"+string(tt.to), func(t *testing.T) {
			err := Transition(tt.from, tt.to)
			if tt.ok && err != nil {
				t.Fatalf("want allowed, got %v", err)
			}
			if !tt.ok {
				if !errors.Is(err, ErrIllegalTransition) {
					t.Fatalf("want ErrIllegalTransition, got %v", err)
				}
				var te *TransitionError
				if !errors.As(err, &te) || te.From != tt.from || te.To != tt.to {
					t.Fatalf("error does not name the move: %v", err)
				}
			}
		})
	}
}

func TestTableCoversAllStates(t *testing.T) {
	if len(All) != 8 {
		t.Fatalf("want 8 states, have %d", len(All))
	}
	for _, s := range All {
		if !s.Valid() {
			t.Errorf("%s missing from the table", s)
		}
		for _, n := range Next(s) {
			if !n.Valid() {
				t.Errorf("%s leads to unknown %s", s, n)
			}
		}
		if s.Terminal() && len(Next(s)) != 0 {
			t.Errorf("terminal %s has exits", s)
		}
	}
}

func TestParse(t *testing.T) {
	for _, s := range All {
		got, err := Parse(string(s))
		if err != nil || got != s {
			t.Fatalf("Parse(%q) = %q, %v", s, got, err)
		}
	}
	if _, err := Parse("active"); !errors.Is(err, ErrUnknownState) {
		t.Fatalf("want ErrUnknownState, got %v", err)
	}
}
