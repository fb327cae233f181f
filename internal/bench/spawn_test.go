package bench

import (
	"testing"

	"github.com/coconut-os/coconut/internal/state"
)

func TestReachedActive(t *testing.T) {
	want := map[state.State]bool{
		state.Spawning: false, state.Attested: false, state.Active: true, state.InferenceBlocked: true,
		state.CapabilityDenied: true, state.Quarantined: true, state.TerminatedClean: true, state.TerminatedRevoked: false,
	}
	for _, s := range state.All {
		t.Run(string(s), func(t *testing.T) {
			if got := reachedActive(s); got != want[s] {
				t.Fatalf("reachedActive(%s) = %v, want %v", s, got, want[s])
			}
		})
	}
}
