package orphan

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/coconut-os/coconut/internal/cgroup"
	"github.com/coconut-os/coconut/internal/netguard"
)

// Why an entry is an orphan.
const (
	// ReasonStateDirGone: the owner daemon is not running and its state
	// directory no longer exists: nothing can adopt the agents. Reapable.
	ReasonStateDirGone = "state_dir_gone"
	// ReasonDaemonStopped: the owner daemon is not running but its state
	// directory exists: the next daemon on it adopts the agents, or
	// coconutd --uninstall removes it all.
	ReasonDaemonStopped = "daemon_stopped"
	// ReasonNoOwner: no owner record (an older coconutd, or a test that
	// made a subtree without a daemon): whose it is cannot be told.
	ReasonNoOwner = "no_owner_record"
)

// Locations says where to look.
type Locations struct {
	Registry string   // owner records
	BPFFS    string   // where pin directories are
	Unified  string   // the cgroup2 mount
	V1       []string // the cpu, memory and pids v1 hierarchies, where mounted
}

// DefaultLocations finds this machine's mounts.
func DefaultLocations() (Locations, error) {
	loc := Locations{Registry: RegistryDir, BPFFS: netguard.BPFFS}
	var err error
	if loc.Unified, err = cgroup.UnifiedMount(); err != nil {
		return loc, err
	}
	loc.V1, err = v1Mounts("/proc/self/mountinfo")
	return loc, err
}

// v1Controllers are the v1 hierarchies the quota package makes groups in.
var v1Controllers = []string{"cpu", "memory", "pids"}

func v1Mounts(mountinfo string) ([]string, error) {
	f, err := os.Open(mountinfo)
	if err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		pf, qf := strings.Fields(pre), strings.Fields(post)
		if !ok || len(pf) < 5 || len(qf) < 3 || qf[0] != "cgroup" {
			continue
		}
		for _, opt := range strings.Split(qf[2], ",") {
			if slices.Contains(v1Controllers, opt) {
				if p := cgroup.UnescapeMount(pf[4]); !slices.Contains(out, p) {
					out = append(out, p)
				}
			}
		}
	}
	return out, sc.Err()
}

// Orphan is one subtree name's leftovers and what they hold.
type Orphan struct {
	Name      string    `json:"name"`
	Reason    string    `json:"reason"`
	Reapable  bool      `json:"reapable"`
	StateDir  string    `json:"state_dir,omitempty"`
	OwnerPID  int       `json:"owner_pid,omitempty"`
	Cgroups   []string  `json:"cgroups"`    // the subtree in the unified hierarchy
	V1Cgroups []string  `json:"v1_cgroups"` // its v1 controller groups
	Pins      string    `json:"pins,omitempty"`
	Programs  []Program `json:"programs"` // attached through the pinned links
	Agents    []Agent   `json:"agents"`
	HeldBy    []int     `json:"held_by,omitempty"` // processes holding the pinned maps open
	owner     *Owner
}

// Program is one program attached to the subtree through a pinned link.
type Program struct {
	Pin    string `json:"pin"`
	ID     uint32 `json:"id"`
	Name   string `json:"name"`
	Attach string `json:"attach"`
}

// Agent is one agent cgroup and the processes alive in it (or below it).
type Agent struct {
	AID    uint64 `json:"aid"`
	Cgroup string `json:"cgroup"`
	PIDs   []int  `json:"pids"`
}

// OwnerAlive reports whether the entry's recorded owner daemon runs.
func (o Orphan) OwnerAlive() bool { return o.owner != nil && o.owner.Alive() }

// Find lists the orphans: entries whose owner is not running and which no
// live process holds, sorted by name.
func Find(loc Locations) ([]Orphan, error) {
	all, err := collect(loc)
	if err != nil {
		return nil, err
	}
	out := []Orphan{}
	for _, o := range all {
		if o.OwnerAlive() {
			continue
		}
		if o.owner == nil && len(o.HeldBy) > 0 {
			continue // a live process (its daemon, a test) uses the guard
		}
		out = append(out, o)
	}
	return out, nil
}

// FindAll lists every coconut subtree name present anywhere, whether or
// not its owner runs (leak checks, uninstall).
func FindAll(loc Locations) ([]Orphan, error) { return collect(loc) }

// Lookup returns the entry of subtree name whether or not its owner
// runs; ok is false when nothing of it exists.
func Lookup(loc Locations, name string) (o Orphan, ok bool, err error) {
	all, err := collect(loc)
	if err != nil {
		return Orphan{}, false, err
	}
	for _, o := range all {
		if o.Name == name {
			return o, true, nil
		}
	}
	return Orphan{}, false, nil
}

// collect gathers every coconut subtree name present anywhere.
func collect(loc Locations) ([]Orphan, error) {
	owners, err := Owners(loc.Registry)
	if err != nil {
		return nil, err
	}
	byName := map[string]*Orphan{}
	get := func(name string) *Orphan {
		if o := byName[name]; o != nil {
			return o
		}
		o := &Orphan{Name: name, Cgroups: []string{}, V1Cgroups: []string{}, Programs: []Program{}, Agents: []Agent{}}
		byName[name] = o
		return o
	}
	uni, err := findSubtrees(loc.Unified)
	if err != nil {
		return nil, err
	}
	for name, paths := range uni {
		get(name).Cgroups = paths
	}
	for _, m := range loc.V1 {
		v1, err := findSubtrees(m)
		if err != nil {
			return nil, err
		}
		for name, paths := range v1 {
			o := get(name)
			o.V1Cgroups = append(o.V1Cgroups, paths...)
		}
	}
	pins, err := findPins(loc.BPFFS)
	if err != nil {
		return nil, err
	}
	for name, p := range pins {
		get(name).Pins = p
	}
	var out []Orphan
	for name, o := range byName {
		if ow, ok := owners[name]; ok {
			o.owner = &ow
			o.StateDir, o.OwnerPID = ow.StateDir, ow.PID
		}
		if err := o.inspect(); err != nil {
			return nil, err
		}
		switch {
		case o.owner == nil:
			o.Reason = ReasonNoOwner
		case o.owner.StateDirExists():
			o.Reason = ReasonDaemonStopped
		default:
			o.Reason = ReasonStateDirGone
		}
		o.Reapable = o.Reason == ReasonStateDirGone && !o.owner.Alive() && len(o.HeldBy) == 0
		out = append(out, *o)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// IsSubtreeName reports whether a cgroup directory name is one coconut
// gives its subtrees (cgroup.SubtreeName, or a test's coconut-… root).
func IsSubtreeName(name string) bool { return name == "coconut" || strings.HasPrefix(name, "coconut-") }

// maxDepth bounds the walk: subtrees sit below the daemon's own cgroup
// (/system.slice/coconutd.service/coconut is depth 3).
const maxDepth = 8

// findSubtrees walks a cgroup hierarchy for subtree directories, not
// descending into them nor into agents' directories.
func findSubtrees(mount string) (map[string][]string, error) {
	out := map[string][]string{}
	if mount == "" {
		return out, nil
	}
	var walk func(dir string, depth int) error
	walk = func(dir string, depth int) error {
		ents, err := os.ReadDir(dir)
		if err != nil && depth > 0 {
			return nil // removed while we walked (ENOENT, or ENODEV while dying)
		}
		if err != nil {
			return fmt.Errorf("list %s: %w", dir, err)
		}
		for _, e := range ents {
			if !e.IsDir() {
				continue
			}
			p := filepath.Join(dir, e.Name())
			switch {
			case IsSubtreeName(e.Name()):
				out[e.Name()] = append(out[e.Name()], p)
			case strings.HasPrefix(e.Name(), "agent-") || depth+1 >= maxDepth:
			default:
				if err := walk(p, depth+1); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return out, walk(mount, 0)
}

// findPins lists the coconut pin directories in bpffs. A bpffs root that
// cannot be read (not root, nothing mounted) has none we can see.
func findPins(bpffs string) (map[string]string, error) {
	out := map[string]string{}
	ents, err := os.ReadDir(bpffs)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", bpffs, err)
	}
	for _, e := range ents {
		if e.IsDir() && IsSubtreeName(e.Name()) {
			out[e.Name()] = filepath.Join(bpffs, e.Name())
		}
	}
	return out, nil
}
