package leakcheck

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coconut-os/coconut/internal/testutil"
)

// TestLeaksFound: a session finds a process left in its cgroup, a cgroup
// directory below it and a …-PID root beside the daemon's tree, and
// removes them; directories of the same shape that are not its own (there
// before it started, another pid's) are not reported.
func TestLeaksFound(t *testing.T) {
	testutil.RequireRoot(t, "cgroups")
	s := sessionForTest(t)
	if s.cg == "" {
		t.Skip("the test binary's cgroup delegates cpu, memory and pids: leakcheck does not move it")
	}
	if l := s.leaks(); len(l) != 0 {
		t.Fatalf("fresh session: leaks %v", whats(l))
	}
	other := filepath.Join(s.loc.Unified, "leakcheck-other-"+strconv.Itoa(s.pid+1))
	mustMkdir(t, other)
	defer os.Remove(other)

	sleeper := exec.Command("/bin/sleep", "600")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { sleeper.Wait(); close(done) }()
	sub := filepath.Join(s.cg, "left")
	root := filepath.Join(s.loc.Unified, "leakcheck-root-"+strconv.Itoa(s.pid))
	mustMkdir(t, sub)
	mustMkdir(t, root)

	wants := []string{"process " + strconv.Itoa(sleeper.Process.Pid), "cgroup " + sub, "cgroup " + root}
	made := []string{sub, root}
	if len(s.v1) > 0 { // a hybrid host: the v1 groups a daemon's quota makes
		v1 := filepath.Join(s.v1[0].dir, "coconut-left")
		mustMkdir(t, v1)
		wants, made = append(wants, "cgroup "+v1), append(made, v1)
	}
	l := s.leaks()
	got := strings.Join(whats(l), "\n")
	for _, want := range wants {
		if !strings.Contains(got, want) {
			t.Errorf("leaks do not name %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, other) {
		t.Errorf("leaks name another binary's %s:\n%s", other, got)
	}
	s.remove(l)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the leaked process was not ended")
	}
	for _, p := range made {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s not removed (%v)", p, err)
		}
	}
	if l := s.leaks(); len(l) != 0 {
		t.Errorf("after remove: leaks %v", whats(l))
	}
}

// sessionForTest is the running binary's own session (Main set it up).
func sessionForTest(t *testing.T) *session {
	t.Helper()
	if current == nil {
		t.Fatal("TestMain did not run leakcheck.Main")
	}
	return current
}

func mustMkdir(t *testing.T, p string) {
	t.Helper()
	if err := os.Mkdir(p, 0o755); err != nil {
		t.Fatal(err)
	}
}

func whats(l []leak) []string {
	var out []string
	for _, x := range l {
		out = append(out, x.what)
	}
	return out
}

func TestMain(m *testing.M) { os.Exit(Main(m)) }
