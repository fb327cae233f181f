package bench

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/coconut-os/coconut/internal/sign"
	"github.com/coconut-os/coconut/internal/state"
)

// reachedActive reports whether an agent in s became Active: spawn
// returns once every agent is Active, and an agent may already have
// moved on (the nosy reviewer's first probe is often refused before the
// call returns: Capability-denied). Only an agent still Spawning or
// Attested, or one revoked without having run, failed to start.
func reachedActive(s state.State) bool {
	switch s {
	case state.Active, state.InferenceBlocked, state.CapabilityDenied, state.Quarantined, state.TerminatedClean:
		return true
	}
	return false
}

// signThrowaway signs an unsigned manifest for one benchmark run: a fresh
// key in a temporary directory, trusted by the daemon for the caller
// (root: for everyone), its private half deleted once the signature is
// made, so the trust entry it leaves can sign nothing else. The manifest
// itself is not modified; the signature lives only in memory.
func signThrowaway(cmd *cobra.Command, g *globals, path string, data []byte) ([]byte, error) {
	dir, err := os.MkdirTemp("", "coconut-bench-key-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	prefix := filepath.Join(dir, "bench")
	pub, err := sign.GenerateKey(prefix)
	if err != nil {
		return nil, err
	}
	priv, err := sign.LoadPrivateKey(prefix + ".key")
	if err != nil {
		return nil, err
	}
	sig, err := sign.SignManifest(priv, path, data)
	if err != nil {
		return nil, err
	}
	pem, err := os.ReadFile(prefix + ".pub")
	if err != nil {
		return nil, err
	}
	if _, err := g.client().TrustAdd(cmd.Context(), pem, "coconut bench spawn: throwaway key, private half deleted"); err != nil {
		return nil, fmt.Errorf("trust a throwaway key: %w", err)
	}
	fmt.Fprintf(os.Stderr, "bench spawn: %s is unsigned: signed it in memory with throwaway key %s (trusted for this run; its private key is deleted)\n", path, sign.KeyID(pub))
	return sig, nil
}
