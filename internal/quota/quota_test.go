package quota

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/coconut-os/coconut/internal/cgroup"
	"github.com/coconut-os/coconut/internal/testutil"
)

// realGroup makes a subtree, an agent cgroup in it and the quota groups,
// all removed at cleanup.
func realGroup(t *testing.T) (*Controller, *cgroup.Group, *Group) {
	t.Helper()
	testutil.RequireRoot(t, "to create cgroups")
	tr, err := cgroup.OpenTree(cgroup.SubtreeName(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(tr.Mount, tr.Root)
	if err != nil {
		t.Fatal(err)
	}
	if c.Mode() == ModeNone {
		t.Fatalf("no controllers on this host: %s", c.Why())
	}
	cg, err := tr.Create(7)
	if err != nil {
		t.Fatal(err)
	}
	g := c.Group(7, cg.Path)
	t.Cleanup(func() {
		cg.Kill(time.Second)
		cg.Remove()
		if err := g.Remove(); err != nil {
			t.Errorf("remove quota groups: %v", err)
		}
		c.RemoveSubtree()
		tr.Remove()
	})
	return c, cg, g
}

// start runs argv in the agent's groups the way the trampoline enters
// them: cloned into the unified group, then written into each v1 group
// before it goes on (it waits for a line on stdin).
func start(t *testing.T, cg *cgroup.Group, g *Group, script string) (*exec.Cmd, io.WriteCloser) {
	t.Helper()
	fd, err := cg.FD()
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	cmd := exec.Command("/bin/sh", "-c", "read go; "+script)
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
	in, _ := cmd.StdinPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for _, p := range g.Procs() {
		if err := os.WriteFile(p, []byte(strconv.Itoa(cmd.Process.Pid)), 0); err != nil {
			t.Fatalf("join %s: %v", p, err)
		}
	}
	return cmd, in
}

func TestApplyAndUsage(t *testing.T) {
	c, cg, g := realGroup(t)
	l := Limits{CPUWeight: 50, CPUMax: "50000 100000", MemoryMax: 32 << 20, MemoryHigh: 16 << 20, Pids: 20}
	if err := g.Apply(l); err != nil {
		t.Fatal(err)
	}
	if c.Mode() == ModeV1 {
		for file, want := range map[string]string{
			filepath.Join(g.v1Path("cpu"), "cpu.shares"):               "512",
			filepath.Join(g.v1Path("cpu"), "cpu.cfs_quota_us"):         "50000",
			filepath.Join(g.v1Path("memory"), "memory.limit_in_bytes"): strconv.Itoa(32 << 20),
			filepath.Join(g.v1Path("pids"), "pids.max"):                "20",
		} {
			b, err := os.ReadFile(file)
			if err != nil || string(b) != want+"\n" {
				t.Errorf("%s = %q, %v; want %s", file, b, err, want)
			}
		}
	}
	cmd, in := start(t, cg, g, "sleep 5")
	defer cmd.Process.Kill()
	in.Write([]byte("go\n"))
	time.Sleep(100 * time.Millisecond)
	u, err := g.Usage()
	if err != nil {
		t.Fatal(err)
	}
	if u.Pids < 1 || u.MemoryCurrent <= 0 || u.MemoryPeak < u.MemoryCurrent || u.OOMKills != 0 {
		t.Fatalf("usage %+v", u)
	}
	t.Run("live change", func(t *testing.T) {
		l2, err := l.Merge(Limits{Pids: -1, CPUWeight: 400, CPUMax: "max"})
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Apply(l2); err != nil {
			t.Fatal(err)
		}
		if c.Mode() == ModeV1 {
			for file, want := range map[string]string{
				filepath.Join(g.v1Path("cpu"), "cpu.shares"):       "4096",
				filepath.Join(g.v1Path("cpu"), "cpu.cfs_quota_us"): "-1",
				filepath.Join(g.v1Path("pids"), "pids.max"):        "max",
			} {
				if b, _ := os.ReadFile(file); string(b) != want+"\n" {
					t.Errorf("%s = %q, want %s", file, b, want)
				}
			}
		}
	})
}

func TestPidsLimit(t *testing.T) {
	_, cg, g := realGroup(t)
	if err := g.Apply(Limits{Pids: 3}); err != nil {
		t.Fatal(err)
	}
	cmd, in := start(t, cg, g, "for i in 1 2 3 4 5 6; do sleep 2 & done; wait")
	defer cmd.Process.Kill()
	in.Write([]byte("go\n"))
	time.Sleep(300 * time.Millisecond)
	u, err := g.Usage()
	if err != nil {
		t.Fatal(err)
	}
	if u.Pids > 3 || u.Pids < 2 {
		t.Fatalf("pids = %d with a limit of 3", u.Pids)
	}
}

func TestOOMKillInsideGroup(t *testing.T) {
	_, cg, g := realGroup(t)
	if err := g.Apply(Limits{MemoryMax: 16 << 20}); err != nil {
		t.Fatal(err)
	}
	// The shell holds a 256 MiB command substitution in its own memory:
	// it grows until the limit stops it.
	cmd, in := start(t, cg, g, "x=$(head -c 268435456 /dev/zero | tr '\\0' a); echo ${#x}")
	in.Write([]byte("go\n"))
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatal("memory hog was not stopped at its limit")
	}
	ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("hog ended %v, want SIGKILL", cmd.ProcessState)
	}
	n, err := g.OOMKills()
	if err != nil || n < 1 {
		t.Fatalf("oom kills = %d, %v", n, err)
	}
}

func TestScratch(t *testing.T) {
	testutil.RequireRoot(t, "to mount")
	testutil.RequireCommand(t, "mkfs.ext4", "apt-get install e2fsprogs")
	base := t.TempDir()
	dir := filepath.Join(base, "9")
	if err := CreateScratch(dir, 100, 0, 0); !errors.Is(err, ErrInvalid) {
		t.Fatalf("tiny scratch: %v", err)
	}
	if err := CreateScratch(dir, 4<<20, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { RemoveScratch(dir) })
	var st syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil || st.Uid != 65534 || st.Mode&0o777 != 0o700 {
		t.Fatalf("scratch root: uid %d mode %o, %v", st.Uid, st.Mode&0o777, err)
	}
	f, err := os.Create(filepath.Join(dir, "fill"))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	var werr error
	for i := 0; i < 8 && werr == nil; i++ {
		_, werr = f.Write(buf)
	}
	if werr == nil {
		werr = f.Sync()
	}
	f.Close()
	if !errors.Is(werr, syscall.ENOSPC) {
		t.Fatalf("writing 8 MiB into 4 MiB: %v, want ENOSPC", werr)
	}
	used, size, err := ScratchUsage(dir)
	if err != nil || size > 4<<20 || used < size/2 {
		t.Fatalf("usage %d of %d, %v", used, size, err)
	}
	if err := RemoveScratch(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir + ".img"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("image left behind: %v", err)
	}
}
