package orphan

import (
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/coconut-os/coconut/internal/cgroup"
)

// ErrAgentsRunning: uninstall refused while agents of the subtree run.
var ErrAgentsRunning = errors.New("agents are still running")

// Uninstall is the clean uninstall path (coconutd --uninstall): it removes
// what a daemon for stateDir leaves in the kernel on purpose so that its
// agents stay guarded while it is down — the network guard pinned in
// bpffs — and the empty cgroup subtree (unified and v1 controller
// groups), wherever in the hierarchy the daemon made it, and its owner
// record. It refuses while the state dir's daemon runs or any agent
// cgroup remains (stop or kill them first): they would lose network
// enforcement. A daemon stopped with SIGTERM keeps all of it.
func Uninstall(stateDir string) error {
	return uninstall(stateDir, false, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// UninstallKillingAgents is Uninstall that ends the agents first
// (coconutd --uninstall --kill-agents, make uninstall, a package purge):
// with no daemon on stateDir nothing will ever adopt them. Still refused
// while the state dir's daemon runs.
func UninstallKillingAgents(stateDir string, log *slog.Logger) error {
	return uninstall(stateDir, true, log)
}

func uninstall(stateDir string, kill bool, log *slog.Logger) error {
	loc, err := DefaultLocations()
	if err != nil {
		return fmt.Errorf("uninstall: %w", err)
	}
	name := cgroup.SubtreeName(stateDir)
	o, ok, err := Lookup(loc, name)
	if err != nil {
		return fmt.Errorf("uninstall: %w", err)
	}
	if !ok {
		return Forget(loc.Registry, name)
	}
	if o.OwnerAlive() {
		return fmt.Errorf("uninstall: %w (pid %d): stop it first", ErrDaemonRunning, o.OwnerPID)
	}
	if len(o.HeldBy) > 0 {
		return fmt.Errorf("uninstall: %w: processes %v hold its network guard open", ErrDaemonRunning, o.HeldBy)
	}
	if len(o.Agents) > 0 && !kill {
		return fmt.Errorf("uninstall: %w (%d agent cgroups under %v): kill them first", ErrAgentsRunning, len(o.Agents), o.Cgroups)
	}
	if err := Teardown(loc, o, log); err != nil {
		return fmt.Errorf("uninstall: %w", err)
	}
	return nil
}
