package launch

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coconut-os/coconut/internal/cgroup"
	"github.com/coconut-os/coconut/internal/measure"
	"github.com/coconut-os/coconut/internal/testutil"
	"github.com/coconut-os/coconut/internal/testutil/leakcheck"
)

func TestMain(m *testing.M) {
	Main()
	if os.Getenv("LAUNCH_TEST_PROBE") != "" {
		os.Exit(probe(os.Args[1:]))
	}
	os.Exit(leakcheck.Main(m)) // issue 18: nothing left behind
}

// run starts prog with args as uid 65534 inside a fresh agent cgroup and
// returns its output.
func run(t *testing.T, prog string, dir string, args ...string) (string, string, error) {
	t.Helper()
	return runSpec(t, prog, func(s *Spec) { s.Dir = dir }, args...)
}

// runSpec starts prog as uid 65534 in a fresh agent cgroup with the spec
// as mod leaves it, waits for it and returns its output.
func runSpec(t *testing.T, prog string, mod func(*Spec), args ...string) (string, string, error) {
	t.Helper()
	testutil.RequireRoot(t, "to switch users and create cgroups")
	tr, err := cgroup.OpenTree(cgroup.SubtreeName(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	g, err := tr.Create(1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Kill(time.Second); g.Remove(); tr.Remove() })
	fd, err := g.FD()
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	cache := measure.NewCache()
	m, err := cache.Measure(prog, true)
	if err != nil {
		t.Fatal(err)
	}
	defer cache.Release(m)
	out, err := os.CreateTemp(t.TempDir(), "log")
	if err != nil {
		t.Fatal(err)
	}
	self, _ := os.Executable()
	spec := Spec{Argv: append([]string{prog}, args...), Env: []string{"PATH=/usr/bin:/bin"}, UID: 65534, GID: 65534}
	mod(&spec)
	cmd, err := Start(Config{Self: self, CgroupFD: fd, Exec: m.File(), Output: out}, spec)
	if err != nil {
		return "", "", err
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("agent exited: %v", err)
	}
	b, _ := os.ReadFile(out.Name())
	rel, _ := cgroup.ProcPath(0)
	return string(b), rel, nil
}

func TestTrampolineDropsEverything(t *testing.T) {
	out, _, err := run(t, "/bin/sh", "/", "-c", "cat /proc/self/status; cat /proc/self/cgroup; echo cwd=$(pwd); ls -l /proc/$$/exe")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"Uid:\t65534\t65534\t65534\t65534",
		"Gid:\t65534\t65534\t65534\t65534",
		"CapPrm:\t0000000000000000",
		"CapEff:\t0000000000000000",
		"CapBnd:\t0000000000000000",
		"CapAmb:\t0000000000000000",
		"NoNewPrivs:\t1",
		"/agent-1\n",
		"cwd=/\n",
		"memfd:coconut-measured",
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
}

func TestTrampolineReportsFailure(t *testing.T) {
	_, _, err := run(t, "/bin/true", filepath.Join(t.TempDir(), "missing"))
	if !errors.Is(err, ErrExec) || !strings.Contains(err.Error(), "working directory") {
		t.Fatalf("want ErrExec naming the working directory, got %v", err)
	}
}
