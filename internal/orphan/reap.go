package orphan

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/coconut-os/coconut/internal/cgroup"
	"github.com/coconut-os/coconut/internal/netguard"
)

var (
	// ErrNotReapable: the entry's daemon runs, its state directory
	// exists, it has no owner record, or a live process holds its guard.
	ErrNotReapable = errors.New("not a reapable orphan")
	// ErrDaemonRunning: the owner daemon of a subtree is running.
	ErrDaemonRunning = errors.New("its daemon is running")
)

// killTimeout bounds how long the agents of one cgroup take to die.
const killTimeout = 10 * time.Second

// ReapAll reaps every reapable orphan that keep accepts (nil: all) and
// returns what it reaped. Entries that are not reapable are left alone
// and logged; one entry's failure does not stop the others.
func ReapAll(loc Locations, keep func(Orphan) bool, log *slog.Logger) ([]Orphan, error) {
	found, err := Find(loc)
	if err != nil {
		return nil, err
	}
	var done []Orphan
	errs := []error{forgetStale(loc, keep, log)}
	for _, o := range found {
		if keep != nil && !keep(o) {
			continue
		}
		if !o.Reapable {
			log.Info("orphan left alone", "name", o.Name, "reason", o.Reason, "state_dir", o.StateDir, "held_by", o.HeldBy)
			continue
		}
		if err := Reap(loc, o, log); err != nil {
			errs = append(errs, err)
			continue
		}
		done = append(done, o)
	}
	return done, errors.Join(errs...)
}

// forgetStale removes the owner records of dead daemons of which nothing
// is left (removed by hand, or by an older coconutd's uninstall).
func forgetStale(loc Locations, keep func(Orphan) bool, log *slog.Logger) error {
	all, err := FindAll(loc)
	if err != nil {
		return err
	}
	present := map[string]bool{}
	for _, o := range all {
		present[o.Name] = true
	}
	owners, err := Owners(loc.Registry)
	if err != nil {
		return err
	}
	var errs []error
	for name, ow := range owners {
		if present[name] || ow.Alive() || (keep != nil && !keep(Orphan{Name: name, StateDir: ow.StateDir, OwnerPID: ow.PID, owner: &ow})) {
			continue
		}
		if err := Forget(loc.Registry, name); err != nil {
			errs = append(errs, err)
			continue
		}
		log.Info("forgot the owner record of a daemon of which nothing is left", "name", name, "state_dir", ow.StateDir)
	}
	return errors.Join(errs...)
}

// Reap removes one orphan after checking again, from fresh state, that it
// is reapable: owner record present, its daemon not running, its state
// directory gone, no process holding its guard.
func Reap(loc Locations, o Orphan, log *slog.Logger) error {
	cur, ok, err := Lookup(loc, o.Name)
	if err != nil {
		return err
	}
	if !ok {
		return nil // gone meanwhile
	}
	if !cur.Reapable {
		return fmt.Errorf("reap %s: %w (%s)", o.Name, ErrNotReapable, cur.Reason)
	}
	return Teardown(loc, cur, log)
}

// Teardown ends the entry's agents (cgroup.kill, or freeze and SIGKILL
// where the kernel lacks it), detaches and unpins its programs, removes
// its cgroup directories and forgets its owner record. It checks nothing:
// Reap and the uninstall path decide whether it may run.
func Teardown(loc Locations, o Orphan, log *slog.Logger) error {
	var errs []error
	for _, a := range o.Agents {
		g, err := cgroup.Open(a.Cgroup)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err == nil {
			err = g.Kill(killTimeout)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		log.Info("ended orphaned agent", "name", o.Name, "aid", a.AID, "cgroup", a.Cgroup, "pids", a.PIDs)
	}
	if len(errs) > 0 {
		// Never unpin the guard of an agent that still runs.
		return fmt.Errorf("reap %s: %w", o.Name, errors.Join(errs...))
	}
	if o.Pins != "" {
		if err := netguard.Uninstall(o.Pins); err != nil {
			return fmt.Errorf("reap %s: %w", o.Name, err)
		}
		log.Info("detached and unpinned the network guard", "name", o.Name, "pins", o.Pins, "programs", len(o.Programs))
	}
	for _, d := range slices.Concat(o.Cgroups, o.V1Cgroups) {
		if err := removeTree(d); err != nil {
			errs = append(errs, err)
			continue
		}
		log.Info("removed cgroup subtree", "name", o.Name, "cgroup", d)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("reap %s: %w", o.Name, err)
	}
	return Forget(loc.Registry, o.Name)
}

// removeTree removes an empty cgroup directory and the empty ones below
// it, deepest first. cgroupfs directories are removed with rmdir even
// though they list files; a populated one stays (EBUSY) and is an error.
func removeTree(dir string) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range ents {
		if e.IsDir() {
			if err := removeTree(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	for range 100 {
		err = os.Remove(dir)
		if err == nil || errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if !errors.Is(err, syscall.EBUSY) {
			break
		}
		time.Sleep(10 * time.Millisecond) // the last task is still being torn down
	}
	return fmt.Errorf("remove cgroup %s: %w", dir, err)
}
