package quota

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeTree lays out a cgroupfs in a temporary directory: a subtree whose
// cgroup.controllers lists controllers (none: the file is absent).
func fakeTree(t *testing.T, controllers string) (mount, root string) {
	t.Helper()
	mount = t.TempDir()
	root = filepath.Join(mount, "coconut-test")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if controllers != "" {
		if err := os.WriteFile(filepath.Join(root, "cgroup.controllers"), []byte(controllers+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return mount, root
}

// TestNewV2NeverV1: on a tree with no controllers, New would look for the
// machine's v1 hierarchies (and find them on a hybrid host); NewV2 is
// ModeNone, refuses limits, and has no v1 groups for the trampoline to
// join.
func TestNewV2NeverV1(t *testing.T) {
	mount, root := fakeTree(t, "")
	c, err := NewV2(mount, root)
	if err != nil {
		t.Fatal(err)
	}
	if c.Mode() != ModeNone || len(c.v1) != 0 {
		t.Fatalf("mode %s, v1 %v: want none and no v1 hierarchies", c.Mode(), c.v1)
	}
	if !strings.Contains(c.Why(), "v1 not looked for") || !strings.Contains(c.Why(), "cgroup.controllers") {
		t.Fatalf("why %q", c.Why())
	}
	if err := c.Check(Limits{Pids: 10}); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("Check(pids) = %v, want ErrUnsupported", err)
	}
	g := c.Group(3, filepath.Join(root, "agent-3"))
	if p := g.Procs(); p != nil {
		t.Fatalf("Procs %v", p)
	}
	if err := g.Apply(Limits{}); err != nil {
		t.Fatalf("Apply of no limit: %v", err)
	}
	if _, err := NewV2(mount, "/"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("NewV2 on / = %v, want ErrInvalid", err)
	}
}

// TestNewV2FakeTree: a fake tree that delegates cpu, memory and pids is
// ModeV2: the controllers are enabled in its cgroup.subtree_control and
// an agent's limits are written into its directory, nowhere else.
func TestNewV2FakeTree(t *testing.T) {
	mount, root := fakeTree(t, "cpuset cpu io memory pids")
	c, err := NewV2(mount, root)
	if err != nil {
		t.Fatal(err)
	}
	if c.Mode() != ModeV2 || c.Unenforced(Limits{IOWeight: 50}) != nil {
		t.Fatalf("mode %s (%s), io %v", c.Mode(), c.Why(), c.io)
	}
	if b, err := os.ReadFile(filepath.Join(root, "cgroup.subtree_control")); err != nil || string(b) != "+cpu +memory +pids +io" {
		t.Fatalf("subtree_control %q, %v", b, err)
	}
	dir := filepath.Join(root, "agent-3")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	g := c.Group(3, dir)
	if err := g.Apply(Limits{CPUWeight: 200, MemoryMax: 64 << 20, Pids: 32}); err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]string{"cpu.weight": "200", "memory.max": "67108864", "pids.max": "32", "memory.oom.group": "1"} {
		if b, err := os.ReadFile(filepath.Join(dir, file)); err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", file, b, err, want)
		}
	}
	if err := g.Apply(Limits{}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "pids.max")); string(b) != "max" {
		t.Errorf("pids.max after removing the limit = %q", b)
	}
	if p := g.Procs(); p != nil {
		t.Fatalf("Procs %v: no v1 groups in v2 mode", p)
	}
}
