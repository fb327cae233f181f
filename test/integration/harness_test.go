package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coconut-os/coconut/internal/testutil/leakcheck"
)

// bins holds the binaries built once for the package.
var bins string

const demoUser = "coconut-demo"

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		fmt.Println("integration: skipped: needs root (real cgroups, users and processes)")
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "coconut-bins-")
	if err != nil {
		panic(err)
	}
	// Agents run as an unprivileged user and some exec these binaries.
	os.Chmod(dir, 0o755)
	cmd := exec.Command("go", "build", "-o", dir+"/", "../../cmd/coconutd", "../../cmd/coconut-trampoline", "../../cmd/coconut", "../../cmd/coconut-tail", "../../examples/dream-team/dream-agent", "../../internal/bench/loads/coconut-enforce-probe", "./denyloop")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Println("integration: build:", err)
		os.Exit(1)
	}
	bins = dir
	code := leakcheck.Main(m) // issue 18: no pin, subtree or process left behind
	os.RemoveAll(dir)
	os.Exit(code)
}

// env is one daemon with its state dir and socket.
type env struct {
	t        *testing.T
	dir      string // world-readable scratch dir
	state    string
	sock     string
	daemon   *exec.Cmd
	logPath  string
	demoUID  uint32
	demoHome string
	args     []string        // extra coconutd flags (newEnvArgs)
	tweak    func(*exec.Cmd) // changes how coconutd is started (newEnvWith)
}

func newEnv(t *testing.T) *env { t.Helper(); return newEnvArgs(t) }

// newEnvArgs is newEnv with extra coconutd flags.
func newEnvArgs(t *testing.T, args ...string) *env {
	t.Helper()
	return startEnv(t, args, nil)
}

// newEnvWith starts a daemon whose command tweak may change first (its
// arguments, environment, inherited files).
func newEnvWith(t *testing.T, tweak func(*exec.Cmd)) *env {
	t.Helper()
	return startEnv(t, nil, tweak)
}

func startEnv(t *testing.T, args []string, tweak func(*exec.Cmd)) *env {
	t.Helper()
	dir, err := os.MkdirTemp("", "coconut-it-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	e := &env{t: t, dir: dir, state: filepath.Join(dir, "state"), sock: filepath.Join(dir, "sock"), logPath: filepath.Join(dir, "daemon.log"), args: args, tweak: tweak}
	t.Cleanup(e.cleanup)
	e.start()
	return e
}

func (e *env) start() {
	e.t.Helper()
	e.startUntil(func() bool { _, _, code := e.cli("doctor"); return code == 0 })
	e.cgroupRoot() // remembered for cleanup, which runs after the daemon stopped
}

// startUntil starts coconutd and waits until up says it answers.
func (e *env) startUntil(up func() bool) {
	e.t.Helper()
	logf, err := os.OpenFile(e.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		e.t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(filepath.Join(bins, "coconutd"), append([]string{"--state-dir", e.state, "--socket", e.sock, "--config", "/dev/null"}, e.args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if e.tweak != nil {
		e.tweak(cmd)
	}
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.daemon = cmd
	// 30 s: on a loaded 2-core machine a restart that adopts agents and
	// reopens a grown chain has taken more than 10 (kill -9 stress test).
	deadline := time.Now().Add(30 * time.Second)
	for !up() {
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(e.logPath)
			e.t.Fatalf("coconutd did not come up:\n%s", b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop ends the daemon with sig and waits for it.
func (e *env) stop(sig syscall.Signal) {
	e.t.Helper()
	if e.daemon == nil {
		return
	}
	e.daemon.Process.Signal(sig)
	done := make(chan struct{})
	go func() { e.daemon.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		e.daemon.Process.Kill()
		e.t.Fatal("coconutd did not stop within 10s")
	}
	e.daemon = nil
}

func (e *env) cleanup() {
	e.stop(syscall.SIGTERM)
	// Agents outlive the daemon by design and the network guard stays
	// pinned after a stop: end and remove all of it (pins, unified and v1
	// subtrees, owner record), as a user uninstalling would.
	if out, err := exec.Command(filepath.Join(bins, "coconutd"), "--uninstall", "--kill-agents", "--state-dir", e.state, "--config", "/dev/null").CombinedOutput(); err != nil {
		e.t.Errorf("coconutd --uninstall --kill-agents: %v\n%s", err, out)
	}
	if e.t.Failed() {
		b, _ := os.ReadFile(e.logPath)
		e.t.Logf("coconutd log:\n%s", b)
	}
	os.RemoveAll(e.dir)
}

// cgroupRoot finds the daemon's subtree from its doctor answer, cached in
// a file so it works after the daemon stopped.
func (e *env) cgroupRoot() string {
	p := filepath.Join(e.dir, "cgroup-root")
	if b, err := os.ReadFile(p); err == nil {
		return string(b)
	}
	out, _, code := e.cli("doctor", "--json")
	if code != 0 {
		return ""
	}
	var d struct {
		CgroupRoot string `json:"cgroup_root"`
	}
	json.Unmarshal([]byte(out), &d)
	os.WriteFile(p, []byte(d.CgroupRoot), 0o644)
	return d.CgroupRoot
}

// cli runs the coconut binary and returns stdout, stderr and the exit code.
func (e *env) cli(args ...string) (string, string, int) {
	return e.cliAs(nil, args...)
}

func (e *env) cliAs(cred *syscall.Credential, args ...string) (string, string, int) {
	cmd := exec.Command(filepath.Join(bins, "coconut"), args...)
	cmd.Env = append(os.Environ(), "COCONUT_SOCKET="+e.sock, "COCONUT_STATE_DIR="+e.state, "NO_COLOR=1")
	cmd.Dir = e.dir
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("run coconut: %v", err)
	}
	return out.String(), errb.String(), code
}

// must runs the CLI and fails the test on a non-zero exit.
func (e *env) must(args ...string) string {
	e.t.Helper()
	out, errs, code := e.cli(args...)
	if code != 0 {
		e.t.Fatalf("coconut %s: exit %d: %s", strings.Join(args, " "), code, errs)
	}
	return out
}

type agentJSON struct {
	AID        uint64   `json:"aid"`
	Name       string   `json:"name"`
	Class      string   `json:"class"`
	State      string   `json:"state"`
	PID        int      `json:"pid"`
	CgroupID   uint64   `json:"cgroup_id"`
	CgroupPath string   `json:"cgroup_path"`
	User       string   `json:"user"`
	UID        uint32   `json:"uid"`
	ExitStatus *int     `json:"exit_status"`
	Reason     string   `json:"reason"`
	Adopted    bool     `json:"adopted"`
	Caps       []string `json:"caps"`
}

func (e *env) agents(all bool) []agentJSON {
	e.t.Helper()
	args := []string{"agent", "ls", "--json"}
	if all {
		args = append(args, "--all")
	}
	var out []agentJSON
	if err := json.Unmarshal([]byte(e.must(args...)), &out); err != nil {
		e.t.Fatal(err)
	}
	return out
}

func (e *env) agent(aid uint64) agentJSON {
	e.t.Helper()
	for _, a := range e.agents(true) {
		if a.AID == aid {
			return a
		}
	}
	e.t.Fatalf("agent %d not listed", aid)
	return agentJSON{}
}

// waitState polls until agent aid is in state want.
func (e *env) waitState(aid uint64, want string) agentJSON {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		a := e.agent(aid)
		if a.State == want {
			return a
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("agent %d is %s, want %s", aid, a.State, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type row struct {
	Seq    uint64            `json:"seq"`
	AID    uint64            `json:"aid"`
	Type   string            `json:"type"`
	Object string            `json:"object"`
	Result string            `json:"result"`
	Detail map[string]string `json:"detail"`
	Hash   string            `json:"hash"`
	Time   string            `json:"time"`
}

func (e *env) rows(args ...string) []row {
	e.t.Helper()
	out := e.must(append([]string{"audit", "query", "--json"}, args...)...)
	var rows []row
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var r row
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			e.t.Fatalf("audit row %q: %v", line, err)
		}
		rows = append(rows, r)
	}
	return rows
}

// keys makes a publisher key and trusts it.
func (e *env) trustedKey(name string) string {
	e.t.Helper()
	prefix := filepath.Join(e.dir, name)
	e.must("key", "gen", "--out", prefix)
	e.must("trust", "add", prefix+".pub")
	return prefix + ".key"
}

// writeSigned writes a manifest and, with key non-empty, signs it.
func (e *env) writeSigned(name, body, key string) string {
	e.t.Helper()
	p := filepath.Join(e.dir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		e.t.Fatal(err)
	}
	if key != "" {
		e.must("manifest", "sign", p, "--key", key)
	}
	return p
}

// demo returns the demo user (created by the daemon on first spawn) and
// makes sure its project directory exists.
func (e *env) demo() (uid uint32, home string) {
	e.t.Helper()
	u, err := user.Lookup(demoUser)
	if err != nil {
		out, err := exec.Command("useradd", "--create-home", "--user-group", "--shell", "/bin/sh", demoUser).CombinedOutput()
		if err != nil {
			e.t.Fatalf("useradd: %v %s", err, out)
		}
		u, _ = user.Lookup(demoUser)
	}
	id, _ := strconv.Atoi(u.Uid)
	// Write scopes must exist at spawn: the Landlock floor attaches to inodes.
	for _, d := range []string{"projects/dream-team", ".ssh", "projects/dream-team/notes", "projects/dream-team/notes/planner",
		"projects/dream-team/notes/researcher", "projects/dream-team/notes/coder", "projects/dream-team/notes/reviewer"} {
		p := filepath.Join(u.HomeDir, d)
		os.MkdirAll(p, 0o755)
		os.Chown(p, id, id)
	}
	os.WriteFile(filepath.Join(u.HomeDir, "projects/dream-team/README.md"), []byte("# dream team\nhello\n"), 0o644)
	os.WriteFile(filepath.Join(u.HomeDir, ".ssh/id_ed25519"), []byte("not a real key\n"), 0o600)
	os.Chown(filepath.Join(u.HomeDir, ".ssh/id_ed25519"), id, id)
	return uint32(id), u.HomeDir
}

// raw sends an HTTP request straight to the socket.
func (e *env) raw(method, path string, body []byte, hdr map[string]string) (int, string) {
	e.t.Helper()
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true, DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", e.sock)
	}}, Timeout: 30 * time.Second}
	req, _ := http.NewRequest(method, "http://coconutd"+path, bytes.NewReader(body))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

func procStatus(t *testing.T, pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatalf("agent pid %d: %v", pid, err)
	}
	return string(b)
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

// gone reports whether pid has ended: no such process, or a zombie waiting
// for its parent (an orphan's parent is init, which reaps when it likes).
func gone(pid int) bool {
	st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	s := string(st)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && strings.HasPrefix(s[i+1:], " Z")
}

// waitLog waits for want in the agent's log and returns the log.
func (e *env) waitLog(aid uint64, want string) string {
	e.t.Helper()
	return e.waitLogFor(aid, want, 60*time.Second)
}

// waitLogFor is waitLog with its own deadline.
func (e *env) waitLogFor(aid uint64, want string, d time.Duration) string {
	e.t.Helper()
	for deadline := time.Now().Add(d); ; time.Sleep(100 * time.Millisecond) {
		l := e.must("agent", "logs", strconv.FormatUint(aid, 10))
		if strings.Contains(l, want) {
			return l
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("agent %d never logged %q; log:\n%s", aid, want, l)
		}
	}
}
