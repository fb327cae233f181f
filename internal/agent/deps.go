package agent

import (
	"context"
	"fmt"
	"os/exec"
	"time"

	"github.com/coconut-os/coconut/internal/audit"
	"github.com/coconut-os/coconut/internal/audit/gate"
	"github.com/coconut-os/coconut/internal/cgroup"
	"github.com/coconut-os/coconut/internal/launch"
)

// What the manager needs of the rest of the daemon, as small interfaces:
// the daemon passes the real ones (an *audit.Chain, the cgroups of its
// cgroup.Tree, launch.Start), and the package's unit tests pass fakes that
// record what was asked, so spawn, caps, delegation and adoption are
// tested without root. The enforcer is already one (enforce.Enforcer).
// Trust stays a *sign.Trust: one opens in any directory, so it blocks
// nothing.

// Chain is the audit chain (*audit.Chain): rows appended one at a time
// (gate.Append) or in a batch, and the rows near its end read back (the
// counters' replay, the answers to calls a dead daemon recorded).
type Chain interface {
	gate.Appender
	AppendBatch(ctx context.Context, rs []audit.Record) ([]audit.Record, error)
	Head() (seq uint64, hash string)
	Query(q audit.Query) ([]audit.Record, error)
	// Err: can a row appended now be durable (not broken, not below the
	// reserve)? Asked before an allowed use is let through as a count.
	Err() error
}

// Cgroups is what the manager does to the agents' cgroups: one directory
// per agent in Coconut's subtree, created at spawn, killed and removed at
// the end, frozen for quarantine, and asked at adoption whether a pid is
// still inside. Groups (below) is the real one.
type Cgroups interface {
	Create(aid uint64) (*cgroup.Group, error)
	Group(aid uint64) (*cgroup.Group, error)
	Open(path string) (*cgroup.Group, error)
	List() ([]uint64, error)
	// Kill ends every process in g and waits until it is empty.
	Kill(g *cgroup.Group) error
	// Remove deletes the empty g.
	Remove(g *cgroup.Group) error
	// Freeze freezes or thaws the group at path and returns once the
	// kernel says it is done (a quarantine that returned means the agent
	// runs no more instructions).
	Freeze(path string, on bool) error
	// Holds reports whether process pid is in g.
	Holds(g *cgroup.Group, pid int) bool
}

// The quota controllers (Config.Quota) stay a *quota.Controller: its
// groups are passed on to the governor and the OOM watch, and on a fake
// cgroupfs (files in a temporary directory) its real v2 code runs and
// writes the limits where a test can read them. What must not happen is the
// v1 fallback of quota.New on a tree that is not the machine's: it looks
// for the machine's own v1 hierarchies through /proc/self and, on a
// hybrid host, would create the agents' groups there. So the daemon leaves
// it nil (quota.New on its real subtree) and the unit tests pass
// quota.NewV2 on their fake tree, which never looks for v1.

// Launcher starts an agent's first process (launch.Start): the trampoline
// in the agent's cgroup, which applies the floor and execs the sealed
// program.
type Launcher func(launch.Config, launch.Spec) (*exec.Cmd, error)

// killWait bounds how long an agent's cgroup may take to empty once killed.
const killWait = 5 * time.Second

// Groups is Cgroups over the real cgroup v2 hierarchy: Tree's directories.
type Groups struct{ Tree *cgroup.Tree }

func (c Groups) Create(aid uint64) (*cgroup.Group, error) { return c.Tree.Create(aid) }
func (c Groups) Group(aid uint64) (*cgroup.Group, error)  { return c.Tree.Group(aid) }
func (c Groups) Open(path string) (*cgroup.Group, error)  { return cgroup.Open(path) }
func (c Groups) List() ([]uint64, error)                  { return c.Tree.List() }
func (c Groups) Kill(g *cgroup.Group) error               { return g.Kill(killWait) }
func (c Groups) Remove(g *cgroup.Group) error             { return g.Remove() }

// Holds compares the cgroup the kernel lists for pid with g's directory.
func (c Groups) Holds(g *cgroup.Group, pid int) bool {
	rel, err := cgroup.ProcPath(pid)
	return err == nil && c.Tree.Mount+rel == g.Path
}

// Freeze writes cgroup.freeze and waits until cgroup.events agrees.
func (c Groups) Freeze(path string, on bool) error {
	g, err := cgroup.Open(path)
	if err != nil {
		return err
	}
	if err := g.Freeze(on); err != nil {
		return err
	}
	deadline := time.Now().Add(freezeWait)
	for {
		f, err := g.Frozen()
		if err != nil {
			return err
		}
		if f == on {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cgroup %s: frozen=%v after %v", path, f, freezeWait)
		}
		time.Sleep(time.Millisecond)
	}
}
