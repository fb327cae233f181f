package daemon

import (
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/coconut-os/coconut/internal/cgroup"
	"github.com/coconut-os/coconut/internal/netguard"
	"github.com/coconut-os/coconut/internal/orphan"
)

// recordOwner writes the owner record that lets coconut doctor and
// coconutd --reap-orphans tell this daemon's subtree and pins from an
// orphan's once it is gone (package orphan). A daemon that cannot write
// it does not start: its leftovers would be nobody's.
func recordOwner(stateDir string, tree *cgroup.Tree) error {
	return orphan.Record(orphan.RegistryDir, stateDir, tree.Root, netguard.PinPath(tree.Root))
}

// ReapOrphans is coconutd --reap-orphans: it ends the agents of every
// orphan whose daemon is gone and whose state directory no longer exists,
// detaches and unpins its programs and removes its cgroup directories,
// logging each step. With stateDir not empty only that state directory's
// orphan is considered. Subtrees whose daemon runs, whose state directory
// exists or that have no owner record are logged and left alone.
func ReapOrphans(stateDir string, log *slog.Logger) error {
	loc, err := orphan.DefaultLocations()
	if err != nil {
		return fmt.Errorf("reap orphans: %w", err)
	}
	var keep func(orphan.Orphan) bool
	if stateDir != "" {
		abs, err := filepath.Abs(stateDir)
		if err != nil {
			return fmt.Errorf("reap orphans: %w", err)
		}
		keep = func(o orphan.Orphan) bool { return o.StateDir == filepath.Clean(abs) }
	}
	done, err := orphan.ReapAll(loc, keep, log)
	agents := 0
	for _, o := range done {
		agents += len(o.Agents)
	}
	log.Info("reaped orphans", "subtrees", len(done), "agents", agents)
	if err != nil {
		return fmt.Errorf("reap orphans: %w", err)
	}
	return nil
}
