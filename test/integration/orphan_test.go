package integration

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coconut-os/coconut/internal/orphan"
)

// TestOrphansReaped: a daemon with agents is SIGKILLed and its state
// directory removed. doctor (asked through another, running daemon) names
// its subtree as a reapable orphan with its agents' live processes and
// the programs still attached; --reap-orphans ends the agents and leaves
// no pin, subtree or owner record of it, and the running daemon's
// subtree, pins and agent beside it are untouched.
func TestOrphansReaped(t *testing.T) {
	dead, live := newEnv(t), newEnv(t)
	sleeper := func(e *env, name string) agentJSON {
		t.Helper()
		aid := mustAID(t, e.must("agent", "run", "--name", name, "--workdir", "/", "--", "/bin/sleep", "600"))
		return e.waitState(aid, "Active")
	}
	orphans := []agentJSON{sleeper(dead, "orphan-a"), sleeper(dead, "orphan-b")}
	neighbour := sleeper(live, "neighbour")
	deadRoot, liveRoot := dead.cgroupRoot(), live.cgroupRoot()
	name, liveName := filepath.Base(deadRoot), filepath.Base(liveRoot)

	dead.stop(syscall.SIGKILL)
	if err := os.RemoveAll(dead.state); err != nil {
		t.Fatal(err)
	}
	for _, a := range orphans {
		if !alive(a.PID) {
			t.Fatalf("agent %d (pid %d) ended with its daemon", a.AID, a.PID)
		}
	}

	found := doctorOrphans(t, live)
	o, ok := found[name]
	if !ok {
		t.Fatalf("doctor does not list %s; orphans: %v", name, keys(found))
	}
	if _, ok := found[liveName]; ok {
		t.Errorf("doctor lists the running daemon's subtree %s as an orphan", liveName)
	}
	if o.Reason != orphan.ReasonStateDirGone || !o.Reapable || o.StateDir != dead.state {
		t.Errorf("orphan %s: reason %q reapable %v state dir %q, want %s, true, %s", name, o.Reason, o.Reapable, o.StateDir, orphan.ReasonStateDirGone, dead.state)
	}
	if len(o.Cgroups) != 1 || o.Cgroups[0] != deadRoot {
		t.Errorf("orphan cgroups %v, want [%s]", o.Cgroups, deadRoot)
	}
	if len(o.Programs) == 0 || o.Pins == "" {
		t.Errorf("orphan %s: pins %q with %d programs, want the network guard attached", name, o.Pins, len(o.Programs))
	}
	held := map[uint64][]int{}
	for _, a := range o.Agents {
		held[a.AID] = a.PIDs
	}
	for _, a := range orphans {
		if pids := held[a.AID]; len(pids) == 0 || !contains(pids, a.PID) {
			t.Errorf("orphan agent %d: pids %v, want %d among them", a.AID, pids, a.PID)
		}
	}
	if text, errs, _ := live.cli("doctor"); !strings.Contains(text, name+" [reapable]") {
		t.Errorf("doctor's text does not name %s as reapable:\n%s%s", name, text, errs)
	}

	// The running daemon's state dir: nothing to reap there.
	out := reap(t, "--state-dir", live.state)
	if strings.Contains(out, "ended orphaned agent") {
		t.Fatalf("--reap-orphans --state-dir of a running daemon reaped:\n%s", out)
	}
	out = reap(t, "--state-dir", dead.state)
	for _, a := range orphans {
		if !strings.Contains(out, "ended orphaned agent") {
			t.Errorf("reap log does not say it ended the agents:\n%s", out)
		}
		waitGone(t, a.PID)
	}
	for _, p := range append([]string{deadRoot, o.Pins, filepath.Join(orphan.RegistryDir, name+".json")}, o.V1Cgroups...) {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s still there after the reap (%v)", p, err)
		}
	}
	if _, ok := doctorOrphans(t, live)[name]; ok {
		t.Errorf("doctor still lists %s after the reap", name)
	}

	if !alive(neighbour.PID) {
		t.Errorf("the running daemon's agent %d ended", neighbour.AID)
	}
	for _, p := range []string{liveRoot, filepath.Join("/sys/fs/bpf", liveName), filepath.Join(orphan.RegistryDir, liveName+".json")} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("the running daemon's %s: %v", p, err)
		}
	}
	if a := live.agent(neighbour.AID); a.State != "Active" {
		t.Errorf("the running daemon's agent is %s", a.State)
	}
}

// TestUninstallKillAgents: --uninstall --kill-agents is refused while the
// state dir's daemon runs; once it stopped (agents kept running, state
// dir kept) it ends the agents and leaves no pin, subtree or record.
func TestUninstallKillAgents(t *testing.T) {
	e := newEnv(t)
	aid := mustAID(t, e.must("agent", "run", "--name", "kept", "--workdir", "/", "--", "/bin/sleep", "600"))
	a := e.waitState(aid, "Active")
	root := e.cgroupRoot()
	uninstall := func() (string, error) {
		b, err := exec.Command(filepath.Join(bins, "coconutd"), "--uninstall", "--kill-agents", "--state-dir", e.state, "--config", "/dev/null").CombinedOutput()
		return string(b), err
	}
	if out, err := uninstall(); err == nil || !strings.Contains(out, "daemon is running") {
		t.Fatalf("--uninstall --kill-agents beside a running daemon: %v %s", err, out)
	}
	if !alive(a.PID) {
		t.Fatal("the refused uninstall ended the agent")
	}
	e.stop(syscall.SIGTERM)
	if out, err := uninstall(); err != nil {
		t.Fatalf("--uninstall --kill-agents: %v %s", err, out)
	}
	waitGone(t, a.PID)
	for _, p := range []string{root, filepath.Join("/sys/fs/bpf", filepath.Base(root)), filepath.Join(orphan.RegistryDir, filepath.Base(root)+".json")} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s still there after the uninstall (%v)", p, err)
		}
	}
}

func reap(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(bins, "coconutd"), append([]string{"--reap-orphans", "--config", "/dev/null"}, args...)...)
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("coconutd --reap-orphans %v: %v\n%s", args, err, b)
	}
	return string(b)
}

func doctorOrphans(t *testing.T, e *env) map[string]orphan.Orphan {
	t.Helper()
	var d struct {
		Orphans []orphan.Orphan `json:"orphans"`
	}
	if err := json.Unmarshal([]byte(e.must("doctor", "--json")), &d); err != nil {
		t.Fatal(err)
	}
	if d.Orphans == nil {
		t.Fatal("doctor --json has no orphans array")
	}
	out := map[string]orphan.Orphan{}
	for _, o := range d.Orphans {
		out[o.Name] = o
	}
	return out
}

func waitGone(t *testing.T, pid int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !gone(pid); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("pid %d still alive", pid)
		}
	}
}

func contains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func keys(m map[string]orphan.Orphan) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestReapDefaultScript: packaging/coconut-reap-default.sh (for a package's
// postrm purge, with no coconutd binary left) leaves a running daemon's
// subtree alone, and once it stopped ends the agents and leaves no pin,
// subtree (unified or v1) or record of it.
func TestReapDefaultScript(t *testing.T) {
	e := newEnv(t)
	aid := mustAID(t, e.must("agent", "run", "--name", "purged", "--workdir", "/", "--", "/bin/sleep", "600"))
	a := e.waitState(aid, "Active")
	root := e.cgroupRoot()
	name := filepath.Base(root)
	var v1 []string
	if o, ok := doctorOrphansAll(t, name); ok {
		v1 = o.V1Cgroups
	}
	t.Logf("subtree %s, v1 groups %v", root, v1)
	script := func() string {
		b, err := exec.Command("/bin/sh", "../../packaging/coconut-reap-default.sh", name).CombinedOutput()
		if err != nil {
			t.Fatalf("coconut-reap-default.sh: %v\n%s", err, b)
		}
		return string(b)
	}
	if out := script(); !strings.Contains(out, "still runs") || !alive(a.PID) {
		t.Fatalf("beside a running daemon: %q, agent alive %v", out, alive(a.PID))
	}
	e.stop(syscall.SIGTERM)
	script()
	waitGone(t, a.PID)
	for _, p := range append([]string{root, filepath.Join("/sys/fs/bpf", name), filepath.Join(orphan.RegistryDir, name+".json")}, v1...) {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s still there after the script (%v)", p, err)
		}
	}
}

// doctorOrphansAll finds the entry of name whether or not its daemon runs.
func doctorOrphansAll(t *testing.T, name string) (orphan.Orphan, bool) {
	t.Helper()
	loc, err := orphan.DefaultLocations()
	if err != nil {
		t.Fatal(err)
	}
	o, ok, err := orphan.Lookup(loc, name)
	if err != nil {
		t.Fatal(err)
	}
	return o, ok
}
