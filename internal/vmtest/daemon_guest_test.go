package vmtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BinsEnv names the guest directory holding coconutd and coconut (TestVM
// builds them and puts them in the initramfs).
const BinsEnv = "COCONUT_VMTEST_BINS"

// TestGuestDaemon is coconutd end to end under the bpf-lsm backend, inside
// the VM (TestVM): the daemon starts with --enforcer bpf-lsm, spawns an
// agent (busybox from its measured memfd, as the demo user), a file deny
// lands in the chain with kernel_denies == chain_denies, a revoke cuts a
// descriptor the agent opened before it (no quarantine), enforcement holds
// while coconutd is killed with -9 (pinned programs), and a daemon
// restarted with --enforcer auto takes bpf-lsm, reopens the pins, adopts
// the agent and writes the deny made while it was down, counters equal;
// then an open, a mkdir and an unlink outside a bundle are the programs'
// ECAPABILITY with rows, not the Landlock floor's EACCES.
func TestGuestDaemon(t *testing.T) {
	bins := os.Getenv(BinsEnv)
	if os.Getenv("COCONUT_VMGUEST") == "" || bins == "" {
		t.Skip("BPF LSM does not run on this project's hosts (kernel-notes.md): TestVM runs this inside a VM")
	}
	d := &guestDaemon{t: t, bins: bins, state: "/tmp/gd-state", sock: "/tmp/gd.sock", log: "/tmp/gd.log"}
	defer d.cleanup()
	d.start("--enforcer", "bpf-lsm")
	doc := d.doctor()
	if doc.Enforcer != "bpf-lsm" || !doc.check("bpf-lsm-selftest") {
		t.Fatalf("--enforcer bpf-lsm: enforcer %q, checks %+v", doc.Enforcer, doc.Checks)
	}

	dir := "/tmp/gd-files"
	for _, p := range []string{dir + "/ok", dir + "/no"} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(dir+"/ok/f", []byte("ok-line\n"), 0o644)
	os.WriteFile(dir+"/no/f", []byte("no-line\n"), 0o644)

	// Agent 1 reads ok/f, holds it open, and after the revoke reads the
	// held descriptor and reopens the file: both are the programs' denies
	// (ECAPABILITY, rows). The Landlock floor is built from the bundle at
	// spawn and still allows ok/: what refuses them is the map update.
	script := `cd ` + dir + `
read -r l < ok/f && echo "A:$l"
exec 3<ok/f
echo held
while [ ! -e go1 ]; do sleep 0.1; done
read -r l <&3; echo "E:$? $l"
read -r l < ok/f; echo "F:$? $l"
`
	aid := d.run("--name", "reader", "--workdir", "/", "--cap", "fs.read:"+dir+"/ok/**", "--", "/bin/busybox", "sh", "-c", script)
	d.waitLog(aid, "held")
	d.must("agent", "revoke", strconv.FormatUint(aid, 10), "fs.read:"+dir+"/ok/**")
	if st := d.agent(aid).State; st == "Quarantined" {
		t.Fatalf("the revoke quarantined the agent: bpf-lsm cuts descriptors without it")
	}
	os.WriteFile(dir+"/go1", nil, 0o644)
	d.waitDone(aid)
	logs := d.must("agent", "logs", strconv.FormatUint(aid, 10))
	t.Logf("agent %d log:\n%s", aid, logs)
	for _, want := range []string{"A:ok-line", "E:1 ", "F:1 "} {
		if !strings.Contains(logs, want) {
			t.Errorf("agent log lacks %q", want)
		}
	}
	if !strings.Contains(logs, "134") {
		t.Errorf("agent log shows no errno 134")
	}
	denies := d.rows("--aid", strconv.FormatUint(aid, 10), "--type", "cap.deny")
	if len(denies) != 2 {
		t.Errorf("agent %d: %d cap.deny rows, want 2 (held fd read, reopen): %+v", aid, len(denies), denies)
	}
	for _, r := range denies {
		if r.Detail["source"] != "bpf-lsm" {
			t.Errorf("deny row %+v: source %q, want bpf-lsm", r, r.Detail["source"])
		}
	}
	d.countersAgree(2)

	// Agent 2 outlives a kill -9 of coconutd: its deny while no daemon
	// runs is the pinned programs', and reaches the chain after restart.
	script2 := `cd ` + dir + `
exec 3<ok/f
echo held
while [ ! -e go2 ]; do sleep 0.1; done
read -r l <&3; echo "G:$? $l"
echo down-done
while [ ! -e go3 ]; do sleep 0.1; done
read -r l < ok/f; echo "H:$? $l"
`
	aid2 := d.run("--name", "survivor", "--workdir", "/", "--cap", "fs.read:"+dir+"/ok/**", "--", "/bin/busybox", "sh", "-c", script2)
	d.waitLog(aid2, "held")
	d.must("agent", "revoke", strconv.FormatUint(aid2, 10), "fs.read:"+dir+"/ok/**")
	d.stop(syscall.SIGKILL)
	os.WriteFile(dir+"/go2", nil, 0o644)
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(d.agentOutput(aid2), "down-done") {
		if time.Now().After(deadline) {
			t.Fatalf("agent %d did not go on while coconutd was down: %q\n%s", aid2, d.agentOutput(aid2), procDump())
		}
		time.Sleep(100 * time.Millisecond)
	}
	d.start() // auto
	doc = d.doctor()
	if doc.Enforcer != "bpf-lsm" || !doc.check("bpf-lsm-selftest") {
		t.Fatalf("restart with auto: enforcer %q, checks %+v", doc.Enforcer, doc.Checks)
	}
	if a := d.agent(aid2); !a.Adopted {
		t.Errorf("agent %d after restart: %+v, want adopted", aid2, a)
	}
	os.WriteFile(dir+"/go3", nil, 0o644)
	d.waitDone(aid2)
	logs2 := d.must("agent", "logs", strconv.FormatUint(aid2, 10))
	t.Logf("agent %d log:\n%s", aid2, logs2)
	for _, want := range []string{"G:1 ", "H:1 "} {
		if !strings.Contains(logs2, want) {
			t.Errorf("agent log lacks %q", want)
		}
	}
	deadline = time.Now().Add(20 * time.Second)
	for {
		denies2 := d.rows("--aid", strconv.FormatUint(aid2, 10), "--type", "cap.deny")
		if len(denies2) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent %d: %d cap.deny rows, want 2 (one made while coconutd was down): %+v", aid2, len(denies2), denies2)
		}
		time.Sleep(200 * time.Millisecond)
	}
	c := d.countersAgree(2)
	t.Logf("counters after restart: %v", c)

	// Agent 3, under the restarted daemon: an open outside its bundle is
	// the programs' ECAPABILITY with a row, not the Landlock floor's
	// EACCES (the floor leaves opens to them: launch.Floor.LSMDecides).
	aid3 := d.run("--name", "after-restart", "--workdir", "/", "--cap", "fs.read:"+dir+"/ok/**", "--", "/bin/busybox", "sh", "-c", "cd "+dir+"; read -r l < ok/f && echo \"A:$l\"; read -r l < no/f; echo \"B:$?\"")
	d.waitDone(aid3)
	logs3 := d.must("agent", "logs", strconv.FormatUint(aid3, 10))
	t.Logf("agent %d log:\n%s", aid3, logs3)
	if !strings.Contains(logs3, "A:ok-line") || !strings.Contains(logs3, "B:1") || strings.Contains(logs3, "Permission denied") {
		t.Errorf("agent %d log: want A:ok-line, B:1 and no EACCES", aid3)
	}
	if denies3 := d.rows("--aid", strconv.FormatUint(aid3, 10), "--type", "cap.deny"); len(denies3) != 1 || denies3[0].Detail["source"] != "bpf-lsm" {
		t.Errorf("agent %d: deny rows %+v, want one from bpf-lsm", aid3, denies3)
	}
	d.countersAgree(3)

	// Agent 4: making and removing names outside its write scope are the
	// path hooks' ECAPABILITY with a row each, not the Landlock floor's
	// EACCES (the floor leaves them to the programs where the hooks are
	// attached: launch.Floor.LSMMakeRemove); inside it they work. Both
	// directories are writable by the agent's user: only the capability
	// refuses.
	for _, p := range []string{dir + "/w", dir + "/x"} {
		os.MkdirAll(p, 0o777)
		os.Chmod(p, 0o777)
	}
	os.WriteFile(dir+"/x/f", []byte("x\n"), 0o666)
	aid4 := d.run("--name", "paths", "--workdir", "/", "--cap", "fs.write:"+dir+"/w/**", "--", "/bin/busybox", "sh", "-c",
		"cd "+dir+"; mkdir w/d; echo M:$?; mkdir x/d; echo N:$?; rm -f x/f; echo U:$?")
	d.waitDone(aid4)
	logs4 := d.must("agent", "logs", strconv.FormatUint(aid4, 10))
	t.Logf("agent %d log:\n%s", aid4, logs4)
	if !strings.Contains(logs4, "M:0") || !strings.Contains(logs4, "N:1") || !strings.Contains(logs4, "U:1") ||
		strings.Contains(logs4, "Permission denied") {
		t.Errorf("agent %d log: want M:0, N:1, U:1 and no EACCES", aid4)
	}
	if _, err := os.Stat(dir + "/x/f"); err != nil {
		t.Errorf("x/f was removed: %v", err)
	}
	denies4 := d.rows("--aid", strconv.FormatUint(aid4, 10), "--type", "cap.deny")
	if len(denies4) != 2 {
		t.Errorf("agent %d: deny rows %+v, want mkdir and unlink", aid4, denies4)
	}
	objs := map[string]bool{}
	for _, r := range denies4 {
		if r.Detail["source"] != "bpf-lsm" {
			t.Errorf("agent %d: deny row not from bpf-lsm: %+v", aid4, r)
		}
		objs[r.Object] = true
	}
	if !objs["mkdir "+dir+"/x/d"] || !objs["unlink "+dir+"/x/f"] {
		t.Errorf("agent %d: deny objects %v, want mkdir %s/x/d and unlink %s/x/f", aid4, objs, dir, dir)
	}
	d.countersAgree(5)
	if out, err := exec.Command(filepath.Join(bins, "coconut"), "audit", "verify", "--state-dir", d.state).CombinedOutput(); err != nil {
		t.Errorf("audit verify: %v\n%s", err, out)
	}
}

// procDump is every process's name, state, wait channel and kernel stack:
// what a stuck agent is waiting for.
func procDump() string {
	var b strings.Builder
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		p := "/proc/" + e.Name()
		comm, _ := os.ReadFile(p + "/comm")
		cmdline, _ := os.ReadFile(p + "/cmdline")
		wchan, _ := os.ReadFile(p + "/wchan")
		stack, _ := os.ReadFile(p + "/stack")
		status, _ := os.ReadFile(p + "/status")
		state := ""
		for _, l := range strings.Split(string(status), "\n") {
			if strings.HasPrefix(l, "State:") || strings.HasPrefix(l, "PPid:") || strings.HasPrefix(l, "SigBlk:") {
				state += strings.TrimSpace(l) + " "
			}
		}
		cg, _ := os.ReadFile(p + "/cgroup")
		fmt.Fprintf(&b, "%s %s [%s] %s wchan=%s cg=%s\n%s", e.Name(), strings.TrimSpace(string(comm)), strings.ReplaceAll(string(cmdline), "\x00", " "), state, wchan, strings.TrimSpace(string(cg)), stack)
	}
	return b.String()
}

// guestDaemon is one coconutd inside the guest and the CLI that talks to it.
type guestDaemon struct {
	t                      *testing.T
	bins, state, sock, log string
	cmd                    *exec.Cmd
	exited                 chan error // cmd.Wait's result; the only waiter
}

func (d *guestDaemon) start(args ...string) {
	d.t.Helper()
	logf, err := os.OpenFile(d.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		d.t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(filepath.Join(d.bins, "coconutd"), append([]string{"--state-dir", d.state, "--socket", d.sock, "--config", "/dev/null", "--user", guestUser}, args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	// No Process.Release: it sets Pid to -1, and a later kill(-1, SIGKILL)
	// is every process in the guest, the agents with it.
	d.cmd = cmd
	d.exited = make(chan error, 1)
	go func() { d.exited <- cmd.Wait() }()
	deadline := time.Now().Add(90 * time.Second) // TCG, one vCPU
	for {
		if _, _, code := d.cli("doctor"); code == 0 {
			return
		}
		select {
		case err := <-d.exited:
			d.cmd = nil
			b, _ := os.ReadFile(d.log)
			d.t.Fatalf("coconutd exited: %v\n%s", err, b)
		default:
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(d.log)
			d.t.Fatalf("coconutd did not come up:\n%s", b)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// stop sends sig and waits until the daemon's socket stops answering.
func (d *guestDaemon) stop(sig syscall.Signal) {
	d.t.Helper()
	if d.cmd == nil {
		return
	}
	pid := d.cmd.Process.Pid
	if pid <= 0 {
		d.t.Fatalf("coconutd's pid is %d: refusing to signal it", pid)
	}
	syscall.Kill(pid, sig)
	select {
	case <-d.exited:
	case <-time.After(20 * time.Second):
		d.t.Fatalf("coconutd %d did not stop on %v", pid, sig)
	}
	d.cmd = nil
}

func (d *guestDaemon) cleanup() {
	d.stop(syscall.SIGTERM)
	if out, err := exec.Command(filepath.Join(d.bins, "coconutd"), "--uninstall", "--kill-agents", "--state-dir", d.state, "--config", "/dev/null").CombinedOutput(); err != nil {
		d.t.Errorf("coconutd --uninstall --kill-agents: %v\n%s", err, out)
	}
	if d.t.Failed() {
		b, _ := os.ReadFile(d.log)
		d.t.Logf("coconutd log:\n%s", b)
	}
}

func (d *guestDaemon) cli(args ...string) (string, string, int) {
	cmd := exec.Command(filepath.Join(d.bins, "coconut"), args...)
	cmd.Env = append(os.Environ(), "COCONUT_SOCKET="+d.sock, "COCONUT_STATE_DIR="+d.state, "NO_COLOR=1")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		d.t.Fatalf("run coconut: %v", err)
	}
	return out.String(), errb.String(), code
}

func (d *guestDaemon) must(args ...string) string {
	d.t.Helper()
	out, errs, code := d.cli(args...)
	if code != 0 {
		d.t.Fatalf("coconut %s: exit %d: %s", strings.Join(args, " "), code, errs)
	}
	return out
}

// run is coconut agent run ARGS; it returns the AID.
func (d *guestDaemon) run(args ...string) uint64 {
	d.t.Helper()
	out := d.must(append([]string{"agent", "run"}, args...)...)
	aid, err := strconv.ParseUint(strings.TrimSpace(out), 10, 64)
	if err != nil {
		d.t.Fatalf("agent run: not an AID: %q", out)
	}
	return aid
}

type guestAgent struct {
	AID     uint64 `json:"aid"`
	State   string `json:"state"`
	Adopted bool   `json:"adopted"`
}

func (d *guestDaemon) agent(aid uint64) guestAgent {
	d.t.Helper()
	var as []guestAgent
	if err := json.Unmarshal([]byte(d.must("agent", "ls", "--all", "--json")), &as); err != nil {
		d.t.Fatal(err)
	}
	for _, a := range as {
		if a.AID == aid {
			return a
		}
	}
	d.t.Fatalf("agent %d not listed", aid)
	return guestAgent{}
}

// agentOutput is the agent's log, read from the daemon or, while it is
// down, nothing: waiters poll the file the daemon writes.
func (d *guestDaemon) agentOutput(aid uint64) string {
	if d.cmd != nil {
		out, _, _ := d.cli("agent", "logs", strconv.FormatUint(aid, 10))
		return out
	}
	// No daemon: the agent writes its output into the state dir itself.
	var all strings.Builder
	filepath.Walk(d.state, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() && filepath.Base(p) == strconv.FormatUint(aid, 10)+".log" {
			b, _ := os.ReadFile(p)
			all.Write(b)
		}
		return nil
	})
	return all.String()
}

func (d *guestDaemon) waitLog(aid uint64, want string) {
	d.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(d.agentOutput(aid), want) {
		if time.Now().After(deadline) {
			d.t.Fatalf("agent %d never printed %q: %+v\n%s", aid, want, d.agent(aid), d.agentOutput(aid))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (d *guestDaemon) waitDone(aid uint64) {
	d.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		a := d.agent(aid)
		if strings.HasPrefix(a.State, "Terminated") {
			return
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("agent %d is %s after 60 s", aid, a.State)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type guestRow struct {
	Type   string            `json:"type"`
	Object string            `json:"object"`
	Result string            `json:"result"`
	Detail map[string]string `json:"detail"`
}

func (d *guestDaemon) rows(args ...string) []guestRow {
	d.t.Helper()
	var rows []guestRow
	for _, l := range strings.Split(strings.TrimSpace(d.must(append([]string{"audit", "query", "--json"}, args...)...)), "\n") {
		if l == "" {
			continue
		}
		var r guestRow
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			d.t.Fatalf("audit row %q: %v", l, err)
		}
		rows = append(rows, r)
	}
	return rows
}

type guestDoctor struct {
	Enforcer string            `json:"enforcer"`
	Counters map[string]uint64 `json:"counters"`
	Checks   []struct {
		Name   string `json:"name"`
		OK     bool   `json:"ok"`
		Detail string `json:"detail"`
	} `json:"checks"`
}

func (g guestDoctor) check(name string) bool {
	for _, c := range g.Checks {
		if c.Name == name {
			return c.OK
		}
	}
	return false
}

func (d *guestDaemon) doctor() guestDoctor {
	d.t.Helper()
	var doc guestDoctor
	// doctor exits non-zero when a check that matters fails; the JSON is
	// what is read.
	out, errs, _ := d.cli("doctor", "--json")
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		d.t.Fatalf("doctor --json: %v: %s %s", err, out, errs)
	}
	return doc
}

// countersAgree waits until doctor's kernel and chain deny counters are
// equal and at least min.
func (d *guestDaemon) countersAgree(min uint64) map[string]uint64 {
	d.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		doc := d.doctor()
		if doc.Counters["kernel_denies"] == doc.Counters["chain_denies"] && doc.Counters["kernel_denies"] >= min {
			return doc.Counters
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("doctor counters disagree (want ≥ %d): %v", min, doc.Counters)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
