package cgroup

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

const agentPrefix = "agent-"

// Tree is coconut's subtree: one directory below the daemon's own cgroup,
// holding one directory per agent.
type Tree struct {
	Mount string // where cgroup2 is mounted
	Rel   string // the subtree's path inside the hierarchy, "/coconut"
	Root  string // Mount + Rel
}

// SubtreeName names the subtree after the state directory, so that two
// daemons with different state dirs (tests) never share agents: the default
// state dir gets the plain name.
func SubtreeName(stateDir string) string {
	clean := filepath.Clean(stateDir)
	if clean == "/var/lib/coconut" {
		return "coconut"
	}
	sum := sha256.Sum256([]byte(clean))
	return "coconut-" + hex.EncodeToString(sum[:6])
}

// OpenTree creates (or reopens) the subtree named name below the daemon's
// own cgroup in the unified hierarchy.
func OpenTree(name string) (*Tree, error) {
	if name == "" || strings.ContainsAny(name, "/\x00") || name == "." || name == ".." {
		return nil, fmt.Errorf("cgroup subtree name %q: must be one path component", name)
	}
	mount, err := UnifiedMount()
	if err != nil {
		return nil, err
	}
	own, err := ProcPath(0)
	if err != nil {
		return nil, err
	}
	if leaf := os.Getenv(DelegateSubgroupEnv); leaf != "" && filepath.Base(own) == leaf {
		own = filepath.Dir(own)
		enableDelegated(filepath.Join(mount, own))
	}
	rel := filepath.Join(own, name)
	// A daemon restarted from inside one of its own agents' subtrees would
	// nest trees; refuse rather than create a confusing hierarchy.
	if strings.Contains(own, "/"+agentPrefix) {
		return nil, fmt.Errorf("coconutd runs inside agent cgroup %s: refusing to nest", own)
	}
	t := &Tree{Mount: mount, Rel: rel, Root: filepath.Join(mount, rel)}
	if err := os.Mkdir(t.Root, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("create cgroup subtree: %w", err)
	}
	return t, nil
}

// Path returns the directory of agent aid.
func (t *Tree) Path(aid uint64) string {
	return filepath.Join(t.Root, agentPrefix+strconv.FormatUint(aid, 10))
}

// Create makes the agent's directory. It fails if it already exists: AIDs
// are never reused, so an existing directory means something is wrong.
func (t *Tree) Create(aid uint64) (*Group, error) {
	p := t.Path(aid)
	if err := os.Mkdir(p, 0o755); err != nil {
		return nil, fmt.Errorf("create agent cgroup: %w", err)
	}
	return Open(p)
}

// Group opens an existing agent directory.
func (t *Tree) Group(aid uint64) (*Group, error) { return Open(t.Path(aid)) }

// List returns the AIDs that have a directory in the tree, ascending.
func (t *Tree) List() ([]uint64, error) {
	ents, err := os.ReadDir(t.Root)
	if err != nil {
		return nil, fmt.Errorf("list agent cgroups: %w", err)
	}
	var aids []uint64
	for _, e := range ents {
		if aid, ok := parseAgentDir(e.Name()); ok && e.IsDir() {
			aids = append(aids, aid)
		}
	}
	sort.Slice(aids, func(i, j int) bool { return aids[i] < aids[j] })
	return aids, nil
}

// AIDOf maps a unified-hierarchy path (as ProcPath returns it) to the agent
// that owns it: the agent's own directory or anything below it.
func (t *Tree) AIDOf(rel string) (uint64, error) {
	rest, ok := strings.CutPrefix(rel, t.Rel+"/")
	if !ok {
		return 0, ErrNotAgent
	}
	first, _, _ := strings.Cut(rest, "/")
	aid, ok := parseAgentDir(first)
	if !ok {
		return 0, ErrNotAgent
	}
	return aid, nil
}

func parseAgentDir(name string) (uint64, bool) {
	s, ok := strings.CutPrefix(name, agentPrefix)
	if !ok {
		return 0, false
	}
	aid, err := strconv.ParseUint(s, 10, 64)
	if err != nil || aid == 0 || strconv.FormatUint(aid, 10) != s {
		return 0, false
	}
	return aid, true
}

// Remove deletes the subtree if it holds no agents (used by tests).
func (t *Tree) Remove() error { return os.Remove(t.Root) }

// DelegateSubgroupEnv names the leaf systemd's DelegateSubgroup= puts the
// daemon in (the Coconut image's drop-in sets both). Under Delegate=yes
// alone the daemon lives in the delegated cgroup itself and, by cgroup
// v2's no-internal-process rule, cannot give its subtree any controller;
// in the leaf it can: the subtree then goes beside the leaf, in the
// delegated cgroup, whose controllers it turns on for its children.
const DelegateSubgroupEnv = "COCONUT_DELEGATE_SUBGROUP"

// enableDelegated turns on, in dir's subtree_control, each controller dir
// has. One at a time: what cannot be enabled stays off, and the quota
// controller says which are missing when it needs them.
func enableDelegated(dir string) {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.controllers"))
	if err != nil {
		return
	}
	for _, c := range strings.Fields(string(b)) {
		_ = os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte("+"+c), 0)
	}
}
