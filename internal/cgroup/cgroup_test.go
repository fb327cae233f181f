package cgroup

import (
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/coconut-os/coconut/internal/testutil"
)

func requireRoot(t *testing.T) {
	t.Helper()
	testutil.RequireRoot(t, "to create cgroups")
	if _, err := UnifiedMount(); err != nil {
		t.Skipf("no cgroup2 hierarchy: %v", err)
	}
}

func TestSubtreeName(t *testing.T) {
	if got := SubtreeName("/var/lib/coconut/"); got != "coconut" {
		t.Fatalf("default state dir: %q", got)
	}
	a, b := SubtreeName("/tmp/a"), SubtreeName("/tmp/b")
	if a == b || a == "coconut" {
		t.Fatalf("names collide: %q %q", a, b)
	}
}

func TestAIDOf(t *testing.T) {
	tr := &Tree{Rel: "/x/coconut-1"}
	tests := []struct {
		path string
		aid  uint64
		ok   bool
	}{
		{"/x/coconut-1/agent-7", 7, true},
		{"/x/coconut-1/agent-7/sub", 7, true},
		{"/x/coconut-1", 0, false},
		{"/x/coconut-10/agent-7", 0, false},
		{"/x/coconut-1/agent-07", 0, false},
		{"/x/coconut-1/agent-0", 0, false},
		{"/x/coconut-1/other", 0, false},
		{"/", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			aid, err := tr.AIDOf(tt.path)
			if tt.ok != (err == nil) || aid != tt.aid {
				t.Fatalf("AIDOf(%q) = %d, %v", tt.path, aid, err)
			}
		})
	}
}

// TestCloneIntoGroupAndKill starts a real process directly inside an agent
// cgroup and kills the group.
func TestCloneIntoGroupAndKill(t *testing.T) {
	requireRoot(t)
	tr, err := OpenTree(SubtreeName(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Remove() })
	g, err := tr.Create(42)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Kill(time.Second); g.Remove() })
	if g.ID == 0 {
		t.Fatal("cgroup id 0")
	}
	fd, err := g.FD()
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	cmd := exec.Command("/bin/sh", "-c", "sleep 60 & sleep 60")
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	got, err := ProcPath(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	aid, err := tr.AIDOf(got)
	if err != nil || aid != 42 {
		t.Fatalf("process in %q, AIDOf = %d, %v", got, aid, err)
	}
	if aids, _ := tr.List(); len(aids) != 1 || aids[0] != 42 {
		t.Fatalf("List = %v", aids)
	}
	if pop, _ := g.Populated(); !pop {
		t.Fatal("not populated")
	}
	if err := g.Kill(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if pop, _ := g.Populated(); pop {
		t.Fatal("still populated after kill")
	}
	if err := g.Remove(); err != nil {
		t.Fatal(err)
	}
}

func TestFreeze(t *testing.T) {
	requireRoot(t)
	tr, err := OpenTree(SubtreeName(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Remove() })
	g, err := tr.Create(1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Kill(time.Second); g.Remove() })
	fd, _ := g.FD()
	defer syscall.Close(fd)
	cmd := exec.Command("/bin/sh", "-c", "while :; do :; done")
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if err := g.Freeze(true); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if f, _ := g.Frozen(); f {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("never frozen")
		}
		time.Sleep(10 * time.Millisecond)
	}
	u1, _ := g.CPUUsec()
	time.Sleep(200 * time.Millisecond)
	u2, _ := g.CPUUsec()
	if u2-u1 > 20000 {
		t.Fatalf("frozen group used %d µs of CPU in 200 ms", u2-u1)
	}
	if err := g.Freeze(false); err != nil {
		t.Fatal(err)
	}
	if err := g.Kill(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
}
