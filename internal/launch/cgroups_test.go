package launch

import (
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coconut-os/coconut/internal/cgroup"
	"github.com/coconut-os/coconut/internal/measure"
	"github.com/coconut-os/coconut/internal/quota"
	"github.com/coconut-os/coconut/internal/testutil"
)

// TestTrampolineJoinsV1Groups checks the agent's program starts inside the
// v1 controller groups it was given (a hybrid host) and that a group that
// cannot be joined fails the start instead of running the agent unlimited.
func TestTrampolineJoinsV1Groups(t *testing.T) {
	testutil.RequireRoot(t, "to create cgroups")
	tr, err := cgroup.OpenTree(cgroup.SubtreeName(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	qc, err := quota.New(tr.Mount, tr.Root)
	if err != nil {
		t.Fatal(err)
	}
	if qc.Mode() != quota.ModeV1 {
		t.Skipf("controllers are %s here, not v1: nothing for the trampoline to join", qc.Mode())
	}
	g, err := tr.Create(1)
	if err != nil {
		t.Fatal(err)
	}
	qg := qc.Group(1, g.Path)
	if err := qg.Apply(quota.Limits{MemoryMax: 64 << 20}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Kill(time.Second); g.Remove(); qg.Remove(); qc.RemoveSubtree(); tr.Remove() })
	fd, err := g.FD()
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	cache := measure.NewCache()
	m, err := cache.Measure("/bin/cat", true)
	if err != nil {
		t.Fatal(err)
	}
	defer cache.Release(m)
	self, _ := os.Executable()
	tests := []struct {
		name  string
		procs []string
		ok    bool
	}{
		{"joins", qg.Procs(), true},
		{"missing group", []string{"/sys/fs/cgroup/memory/no-such-group/cgroup.procs"}, false},
		{"not a procs file", []string{"/etc/passwd"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := os.CreateTemp(t.TempDir(), "log")
			if err != nil {
				t.Fatal(err)
			}
			cmd, err := Start(Config{Self: self, CgroupFD: fd, Exec: m.File(), Output: out},
				Spec{Argv: []string{"cat", "/proc/self/cgroup"}, Env: []string{}, Dir: "/", UID: 65534, GID: 65534, CgroupProcs: tt.procs})
			if !tt.ok {
				if !errors.Is(err, ErrExec) || !strings.Contains(err.Error(), "join cgroup") {
					t.Fatalf("want ErrExec naming the cgroup, got %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			cmd.Wait()
			b, _ := os.ReadFile(out.Name())
			for _, c := range []string{":memory:", ":cpu:", ":pids:"} {
				ok := false
				for _, line := range strings.Split(string(b), "\n") {
					if strings.Contains(line, c) && strings.HasSuffix(line, "/agent-1") {
						ok = true
					}
				}
				if !ok {
					t.Errorf("agent not in its v1 %s group:\n%s", c, b)
				}
			}
		})
	}
}
