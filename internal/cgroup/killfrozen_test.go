package cgroup

import (
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// TestKillEachForkLoop: the fallback for kernels without cgroup.kill
// (freeze, then SIGKILL pid by pid) empties a group whose process forks
// in a loop.
func TestKillEachForkLoop(t *testing.T) {
	requireRoot(t)
	tr, err := OpenTree(SubtreeName(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Remove() })
	g, err := tr.Create(7)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Kill(time.Second); g.Remove() })
	fd, err := g.FD()
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	cmd := exec.Command("/bin/sh", "-c", "while :; do sleep 60 & done")
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	time.Sleep(100 * time.Millisecond) // let it fork a few
	if err := g.killEach(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if pop, _ := g.Populated(); !pop {
			break
		}
		if time.Now().After(deadline) {
			pids, _ := g.Procs()
			t.Fatalf("still populated after freeze and kill: %v", pids)
		}
	}
	if f, _ := g.Frozen(); f {
		t.Error("group left frozen")
	}
}
