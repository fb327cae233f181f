package quota

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Group is one agent's controller state: its unified directory (v2) or
// its agent-AID directories in the v1 hierarchies.
type Group struct {
	c       *Controller
	aid     uint64
	unified string // the agent's unified-hierarchy directory
}

// Group returns agent aid's group; unified is its cgroup2 directory.
// Nothing is created until Apply.
func (c *Controller) Group(aid uint64, unified string) *Group {
	return &Group{c: c, aid: aid, unified: unified}
}

func (g *Group) leaf() string { return "agent-" + strconv.FormatUint(g.aid, 10) }

// v1Path is the agent's directory in v1 controller n.
func (g *Group) v1Path(n string) string {
	d := g.c.v1[n]
	return filepath.Join(d.mount, d.rel, g.leaf())
}

// Check refuses limits the host cannot enforce. IO weight is the one
// exception the design allows ("where the controller exists"): it is
// recorded and reported by Unenforced instead.
func (c *Controller) Check(l Limits) error {
	if err := l.Validate(); err != nil {
		return err
	}
	if c.mode == ModeNone && (l.CPUWeight != 0 || l.CPUMax != "" || l.MemoryMax != 0 || l.MemoryHigh != 0 || l.Pids != 0) {
		return fmt.Errorf("%w: no cpu, memory or pids controller is usable (%s)", ErrUnsupported, c.why)
	}
	return nil
}

// Unenforced names the set limits that are recorded but not enforced.
func (c *Controller) Unenforced(l Limits) []string {
	if l.IOWeight != 0 && !c.io {
		return []string{"io_weight"}
	}
	return nil
}

// Apply creates the agent's groups if needed and sets every limit in l
// (zero fields reset to "unlimited" / the default weight).
func (g *Group) Apply(l Limits) error {
	if err := g.c.Check(l); err != nil {
		return err
	}
	switch g.c.mode {
	case ModeV2:
		return g.applyV2(l)
	case ModeV1:
		return g.applyV1(l)
	}
	return nil
}

func (g *Group) applyV2(l Limits) error {
	rel := strings.TrimPrefix(g.unified, g.c.mount)
	m, err := cgroup2.Load(rel, cgroup2.WithMountpoint(g.c.mount))
	if err != nil {
		return fmt.Errorf("load cgroup %s: %w", g.unified, err)
	}
	weight := uint64(100)
	if l.CPUWeight != 0 {
		weight = uint64(l.CPUWeight)
	}
	quota, period := int64(-1), uint64(DefaultCPUPeriod)
	if l.CPUMax != "" {
		quota, period, _ = ParseCPUMax(l.CPUMax) // validated by Check
	}
	var qp *int64
	if quota >= 0 {
		qp = &quota
	}
	unlimited := int64(math.MaxInt64) // the kernel reads it as "max"
	memMax, memHigh, pids := unlimited, unlimited, int64(0)
	if l.MemoryMax != 0 {
		memMax = l.MemoryMax
	}
	if l.MemoryHigh != 0 {
		memHigh = l.MemoryHigh
	}
	oomGroup := true // an OOM kill ends the whole agent, not one process of it
	res := &cgroup2.Resources{
		CPU:    &cgroup2.CPU{Weight: &weight, Max: cgroup2.NewCPUMax(qp, &period)},
		Memory: &cgroup2.Memory{Max: &memMax, High: &memHigh, OOMGroup: &oomGroup},
	}
	if g.c.io && l.IOWeight != 0 {
		w := uint16(l.IOWeight)
		res.IO = &cgroup2.IO{BFQ: cgroup2.BFQ{Weight: w}}
	}
	if l.Pids != 0 {
		pids = int64(l.Pids)
		res.Pids = &cgroup2.Pids{Max: pids}
	}
	if err := m.Update(res); err != nil {
		return fmt.Errorf("set limits on %s: %w", g.unified, err)
	}
	if l.Pids == 0 {
		if err := os.WriteFile(filepath.Join(g.unified, "pids.max"), []byte("max"), 0); err != nil {
			return fmt.Errorf("set pids.max on %s: %w", g.unified, err)
		}
	}
	return nil
}

// hierarchy is the v1 subsystems coconut uses, rooted where each is
// mounted. containerd's constructors append the controller name to the
// root, so the root is the mount's parent; a co-mounted hierarchy
// ("cpu,cpuacct") is reached through the usual per-name symlink.
func (g *Group) hierarchy() ([]cgroup1.Subsystem, error) {
	var subs []cgroup1.Subsystem
	for _, n := range v1Controllers {
		d := g.c.v1[n]
		parent := filepath.Dir(d.mount)
		if real, err := filepath.EvalSymlinks(filepath.Join(parent, n)); err != nil || real != d.mount {
			return nil, fmt.Errorf("v1 %s hierarchy at %s is not reachable as %s", n, d.mount, filepath.Join(parent, n))
		}
		switch n {
		case "cpu":
			subs = append(subs, cgroup1.NewCpu(parent))
		case "memory":
			subs = append(subs, cgroup1.NewMemory(parent, cgroup1.OptionalSwap()))
		case "pids":
			subs = append(subs, cgroup1.NewPids(parent))
		}
	}
	return subs, nil
}

func (g *Group) v1Rel(n cgroup1.Name) (string, error) {
	d, ok := g.c.v1[string(n)]
	if !ok {
		return "", cgroup1.ErrControllerNotActive
	}
	return filepath.Join(d.rel, g.leaf()), nil
}

func (g *Group) applyV1(l Limits) error {
	subs, err := g.hierarchy()
	if err != nil {
		return err
	}
	sh := shares(l.CPUWeight)
	quota, period := int64(-1), uint64(DefaultCPUPeriod)
	if l.CPUMax != "" {
		quota, period, _ = ParseCPUMax(l.CPUMax)
	}
	limit, soft := int64(-1), int64(-1)
	if l.MemoryMax != 0 {
		limit = l.MemoryMax
	}
	if l.MemoryHigh != 0 {
		soft = l.MemoryHigh
	}
	res := &specs.LinuxResources{
		CPU:    &specs.LinuxCPU{Shares: &sh, Quota: &quota, Period: &period},
		Memory: &specs.LinuxMemory{Limit: &limit, Reservation: &soft},
	}
	if l.Pids != 0 {
		res.Pids = &specs.LinuxPids{Limit: ptr(int64(l.Pids))}
	}
	cg, err := cgroup1.New(g.v1Rel, res, cgroup1.WithHierarchy(func() ([]cgroup1.Subsystem, error) { return subs, nil }))
	if err != nil {
		return fmt.Errorf("create v1 groups for agent %d: %w", g.aid, err)
	}
	_ = cg
	if l.Pids == 0 {
		// containerd writes pids.max only for a positive limit; removing
		// one is ours to do.
		if err := os.WriteFile(filepath.Join(g.v1Path("pids"), "pids.max"), []byte("max"), 0); err != nil {
			return fmt.Errorf("set pids.max: %w", err)
		}
	}
	return nil
}

func ptr[T any](v T) *T { return &v }

// Procs lists the cgroup.procs files the agent's first process must join
// before its first instruction: the v1 groups (the unified one is entered
// at clone). Empty in v2 mode.
func (g *Group) Procs() []string {
	if g.c.mode != ModeV1 {
		return nil
	}
	var out []string
	for _, n := range v1Controllers {
		out = append(out, filepath.Join(g.v1Path(n), "cgroup.procs"))
	}
	return out
}

// Remove deletes the agent's v1 groups once they are empty. In v2 mode
// the unified directory belongs to package cgroup and is left alone.
func (g *Group) Remove() error {
	if g.c.mode != ModeV1 {
		return nil
	}
	var errs []error
	for _, n := range v1Controllers {
		if err := rmdirRetry(g.v1Path(n)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// rmdirRetry removes an empty cgroup directory; the kernel may still be
// tearing down the last exited task, hence the short retry.
func rmdirRetry(p string) error {
	var err error
	for range 100 {
		err = os.Remove(p)
		if err == nil || errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return fmt.Errorf("remove %s: %w", p, err)
}

// RemoveSubtree removes coconut's v1 subtree directories and the empty
// agent groups left in them; tests use it, the daemon keeps them.
func (c *Controller) RemoveSubtree() error {
	var errs []error
	for _, d := range c.v1 {
		root := filepath.Join(d.mount, d.rel)
		ents, _ := os.ReadDir(root)
		for _, e := range ents {
			if e.IsDir() && strings.HasPrefix(e.Name(), "agent-") {
				if err := rmdirRetry(filepath.Join(root, e.Name())); err != nil {
					errs = append(errs, err)
				}
			}
		}
		if err := os.Remove(root); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
