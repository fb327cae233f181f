package orphan

import (
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/coconut-os/coconut/internal/cgroup"
	"github.com/coconut-os/coconut/internal/netguard"
	"github.com/coconut-os/coconut/internal/testutil"
)

// subtree is a daemon's leftovers made by hand: a subtree with one agent
// running two processes and the network guard pinned, as a SIGKILLed
// daemon leaves them.
type subtree struct {
	tree  *cgroup.Tree
	pins  string
	agent *exec.Cmd
	state string
}

func makeSubtree(t *testing.T) *subtree {
	t.Helper()
	s := &subtree{state: t.TempDir()}
	var err error
	if s.tree, err = cgroup.OpenTree(cgroup.SubtreeName(s.state)); err != nil {
		t.Fatal(err)
	}
	if s.pins, err = netguard.PinDir(s.tree.Root); err != nil {
		t.Fatal(err)
	}
	g, err := netguard.Open(s.tree.Root, s.pins)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Close(); err != nil { // the pins stay, as after a SIGKILL
		t.Fatal(err)
	}
	grp, err := s.tree.Create(1)
	if err != nil {
		t.Fatal(err)
	}
	fd, err := grp.FD()
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	s.agent = exec.Command("/bin/sh", "-c", "sleep 600 & sleep 600")
	s.agent.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
	if err := s.agent.Start(); err != nil {
		t.Fatal(err)
	}
	go s.agent.Wait()
	// Whatever the test leaves, remove it as an uninstall would.
	t.Cleanup(func() {
		loc := testLocations(t, t.TempDir())
		if o, ok, _ := Lookup(loc, s.name()); ok {
			Teardown(loc, o, quiet())
		}
	})
	return s
}

func (s *subtree) name() string { return filepath.Base(s.tree.Root) }

func testLocations(t *testing.T, registry string) Locations {
	t.Helper()
	loc, err := DefaultLocations()
	if err != nil {
		t.Skipf("no cgroup2: %v", err)
	}
	loc.Registry = registry
	return loc
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// deadOwner writes a record for name naming an exited process.
func deadOwner(t *testing.T, registry, name, stateDir string) {
	t.Helper()
	c := exec.Command("/bin/true")
	if err := c.Run(); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(Owner{Name: name, StateDir: stateDir, PID: c.Process.Pid, Start: 1})
	if err := os.WriteFile(filepath.Join(registry, name+".json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func requireRoot(t *testing.T) {
	testutil.RequireRoot(t, "cgroups, BPF")
}

// TestReapOrphan: an orphan whose state dir exists is listed as stopped
// and not reaped; once the state dir is gone it is reapable, and ReapAll
// ends its agent's processes, detaches and unpins the guard, removes the
// subtree and forgets the record. A neighbour whose owner runs (this
// process) is not listed and not touched.
func TestReapOrphan(t *testing.T) {
	requireRoot(t)
	reg := t.TempDir()
	loc := testLocations(t, reg)
	dead, live := makeSubtree(t), makeSubtree(t)
	deadOwner(t, reg, dead.name(), dead.state)
	if err := Record(reg, live.state, live.tree.Root, live.pins); err != nil {
		t.Fatal(err)
	}
	mine := func(o Orphan) bool { return o.Name == dead.name() || o.Name == live.name() }

	found := byName(t, loc)
	if _, ok := found[live.name()]; ok {
		t.Errorf("the live owner's subtree %s is listed", live.name())
	}
	o, ok := found[dead.name()]
	if !ok || o.Reason != ReasonDaemonStopped || o.Reapable {
		t.Fatalf("with its state dir: %+v (found %v), want %s and not reapable", o, ok, ReasonDaemonStopped)
	}
	if done, err := ReapAll(loc, mine, quiet()); err != nil || len(done) != 0 {
		t.Fatalf("ReapAll with the state dir present: reaped %v, %v", done, err)
	}

	os.RemoveAll(dead.state)
	o = byName(t, loc)[dead.name()]
	if o.Reason != ReasonStateDirGone || !o.Reapable {
		t.Fatalf("state dir gone: reason %q reapable %v", o.Reason, o.Reapable)
	}
	if len(o.Programs) == 0 || o.Pins != dead.pins {
		t.Errorf("pins %q programs %v, want the guard's", o.Pins, o.Programs)
	}
	if len(o.Agents) != 1 || len(o.Agents[0].PIDs) != 3 {
		t.Errorf("agents %+v, want agent 1 with sh and its two sleeps", o.Agents)
	}
	done, err := ReapAll(loc, mine, quiet())
	if err != nil || len(done) != 1 || done[0].Name != dead.name() {
		t.Fatalf("ReapAll: %v, %v", done, err)
	}
	for _, pid := range o.Agents[0].PIDs {
		for deadline := time.Now().Add(5 * time.Second); syscall.Kill(pid, 0) == nil && !zombie(pid); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("agent process %d alive after the reap", pid)
			}
		}
	}
	for _, p := range append([]string{dead.tree.Root, dead.pins, filepath.Join(reg, dead.name()+".json")}, o.V1Cgroups...) {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s still there (%v)", p, err)
		}
	}
	for _, p := range []string{live.tree.Root, live.pins, filepath.Join(reg, live.name()+".json")} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("the live neighbour's %s: %v", p, err)
		}
	}
	if syscall.Kill(live.agent.Process.Pid, 0) != nil {
		t.Error("the live neighbour's agent ended")
	}
}

// TestReapRefusesUnowned: without an owner record nothing is reaped, even
// with a dead-looking subtree.
func TestReapRefusesUnowned(t *testing.T) {
	requireRoot(t)
	loc := testLocations(t, t.TempDir())
	s := makeSubtree(t)
	o, ok := byName(t, loc)[s.name()]
	if !ok || o.Reason != ReasonNoOwner || o.Reapable {
		t.Fatalf("unowned: %+v (found %v)", o, ok)
	}
	if err := Reap(loc, o, quiet()); err == nil {
		t.Fatal("Reap of an unowned subtree: no error")
	}
	if syscall.Kill(s.agent.Process.Pid, 0) != nil {
		t.Error("the refused reap ended the agent")
	}
}

func byName(t *testing.T, loc Locations) map[string]Orphan {
	t.Helper()
	found, err := Find(loc)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]Orphan{}
	for _, o := range found {
		out[o.Name] = o
	}
	return out
}

func zombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	s := string(b)
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == ')' {
			return len(s) > i+2 && s[i+2] == 'Z'
		}
	}
	return false
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestReapForgetsStaleRecords: a dead daemon's record of which nothing is
// left goes; a live one's stays.
func TestReapForgetsStaleRecords(t *testing.T) {
	requireRoot(t)
	reg := t.TempDir()
	loc := testLocations(t, reg)
	deadOwner(t, reg, "coconut-stale-test", "/nonexistent/state")
	if err := Record(reg, t.TempDir(), "/nonexistent/coconut-live-test", "/nonexistent/pins"); err != nil {
		t.Fatal(err)
	}
	if _, err := ReapAll(loc, nil, quiet()); err != nil {
		t.Fatal(err)
	}
	owners, err := Owners(reg)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := owners["coconut-stale-test"]; ok {
		t.Error("the stale record is still there")
	}
	if _, ok := owners["coconut-live-test"]; !ok {
		t.Error("the live daemon's record went")
	}
}
