package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRestartAdoptsAgentsAndNeverReusesAIDs stops the daemon cleanly and
// then crashes it, with agents running: they keep running, the next daemon
// adopts them, and AIDs keep rising.
func TestRestartAdoptsAgentsAndNeverReusesAIDs(t *testing.T) {
	e := newEnv(t)
	e.demo()
	key := e.trustedKey("maya")
	body := oneAgent("sleeper", "/bin/sleep", "600")
	body = strings.Replace(body, "    workdir: /\n", "    workdir: /\n    replicas: 3\n", 1)
	path := e.writeSigned("sleepers.yaml", body, key)
	first := e.agents(false)
	if len(first) != 0 {
		t.Fatal("agents before spawn")
	}
	e.must("agent", "spawn", path)
	before := e.agents(false)
	e.cgroupRoot() // remember the subtree for cleanup

	for round, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		e.stop(sig)
		for _, a := range before {
			if !alive(a.PID) {
				t.Fatalf("round %d: agent %d (pid %d) died with the daemon", round, a.AID, a.PID)
			}
		}
		e.start()
		after := e.agents(false)
		if len(after) != len(before) {
			t.Fatalf("round %d: %d agents after restart, want %d", round, len(after), len(before))
		}
		for i, a := range after {
			if a.AID != before[i].AID || a.PID != before[i].PID || a.State != "Active" || !a.Adopted {
				t.Fatalf("round %d: agent after restart %+v, before %+v", round, a, before[i])
			}
		}
		if n := len(e.rows("--type", "agent.adopt")); n != 3*(round+1) {
			t.Errorf("round %d: %d adopt rows", round, n)
		}
	}

	// New AIDs are above every AID handed out before, across restarts.
	var maxAID uint64
	for _, a := range before {
		maxAID = max(maxAID, a.AID)
	}
	e.must("agent", "spawn", path)
	for _, a := range e.agents(false) {
		if a.Adopted {
			continue
		}
		if a.AID <= maxAID {
			t.Fatalf("AID %d reused (max before restart %d)", a.AID, maxAID)
		}
	}

	// An adopted agent is still under control: kill works, and one that
	// exits by itself is recorded as Terminated-clean.
	e.must("agent", "kill", strconv.FormatUint(before[0].AID, 10))
	e.waitState(before[0].AID, "Terminated-revoked")
	if !gone(before[0].PID) {
		t.Error("killed adopted agent still alive")
	}
	syscall.Kill(before[1].PID, syscall.SIGTERM)
	a := e.waitState(before[1].AID, "Terminated-clean")
	if !strings.Contains(a.Reason, "adopted") {
		t.Errorf("reason %q", a.Reason)
	}
	e.must("audit", "verify")
}

// TestAgentEnds covers agents ending by themselves: the exit status is
// kept, a crash does not hurt the daemon, and what an agent leaves behind
// in its cgroup is ended with it.
func TestAgentEnds(t *testing.T) {
	e := newEnv(t)
	e.demo()
	// A crash: SIGSEGV.
	aid := mustAID(t, e.must("agent", "run", "--workdir", "/", "--", "/bin/sh", "-c", "kill -SEGV $$"))
	a := e.waitState(aid, "Terminated-clean")
	if a.ExitStatus == nil || *a.ExitStatus != 128+11 || !strings.Contains(a.Reason, "signal 11") {
		t.Errorf("crashed agent: %+v", a)
	}
	e.must("doctor")

	// A background child outliving the main process is ended with it.
	pidFile := e.dir + "/bg.pid"
	os.WriteFile(pidFile, nil, 0o666)
	os.Chmod(pidFile, 0o666) // the agent runs as the demo user
	aid = mustAID(t, e.must("agent", "run", "--workdir", "/", "--cap", "fs.exec:/usr/bin/**", "--cap", "fs.write:"+pidFile,
		"--", "/bin/sh", "-c", "sleep 600 & echo $! > "+pidFile+"; sleep 0.3"))
	e.waitState(aid, "Terminated-clean")
	b, _ := os.ReadFile(pidFile)
	bg, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("background pid %q", b)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !gone(bg) {
		if time.Now().After(deadline) {
			t.Fatalf("background child %d survived its agent", bg)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// The lifecycle is in the chain in order.
	var states []string
	for _, r := range e.rows("--aid", strconv.FormatUint(aid, 10), "--type", "agent.state") {
		states = append(states, r.Object)
	}
	if got := strings.Join(states, ","); got != "Attested,Active,Terminated-clean" {
		t.Errorf("states %s", got)
	}
}

// TestCallerIdentity: the daemon knows who calls from the kernel. An agent
// sees only itself; another user sees none of root's agents and cannot
// kill them.
func TestCallerIdentity(t *testing.T) {
	e := newEnv(t)
	demoUID, _ := e.demo()
	out := e.must("agent", "run", "--name", "target", "--workdir", "/", "--", "/bin/sleep", "600")
	target := mustAID(t, out)

	// An agent calling the API is that agent.
	probe := e.must("agent", "run", "--name", "asker", "--workdir", "/", "--", bins+"/coconut", "--socket", e.sock, "agent", "ls", "--json")
	asker := mustAID(t, probe)
	e.waitState(asker, "Terminated-clean")
	logs := e.must("agent", "logs", strconv.FormatUint(asker, 10))
	var seen []agentJSON
	if err := json.Unmarshal([]byte(logs), &seen); err != nil {
		t.Fatalf("agent's ls output %q: %v", logs, err)
	}
	if len(seen) != 1 || seen[0].AID != asker {
		t.Errorf("agent saw %+v, want only itself", seen)
	}

	// Another user: root's agents are invisible and untouchable.
	cred := &syscall.Credential{Uid: demoUID, Gid: demoUID}
	out, _, code := e.cliAs(cred, "agent", "ls", "--json")
	if code != 0 || strings.TrimSpace(out) != "[]" {
		t.Errorf("demo user's ls: exit %d %q", code, out)
	}
	_, errs, code := e.cliAs(cred, "agent", "kill", strconv.FormatUint(target, 10))
	if code != 1 || !strings.Contains(errs, "no agent") {
		t.Errorf("demo user killing root's agent: exit %d %q", code, errs)
	}
	if e.agent(target).State != "Active" {
		t.Error("target no longer active")
	}
	// A user's own agents run as that user even if they ask for another.
	_, errs, code = e.cliAs(cred, "agent", "run", "--user", "root", "--workdir", "/", "--", "/bin/true")
	if code != 1 || !strings.Contains(errs, "may only run agents as itself") {
		t.Errorf("demo user asking for root: exit %d %q", code, errs)
	}
	out, _, code = e.cliAs(cred, "agent", "run", "--workdir", "/", "--", "/bin/true")
	if code != 0 {
		t.Fatalf("demo user's own agent: exit %d", code)
	}
	mine := e.waitState(mustAID(t, out), "Terminated-clean")
	if mine.UID != demoUID {
		t.Errorf("demo user's agent ran as uid %d", mine.UID)
	}
	out, _, _ = e.cliAs(cred, "agent", "ls", "--all", "--json")
	var list []agentJSON
	json.Unmarshal([]byte(out), &list)
	if len(list) != 1 || list[0].AID != mine.AID {
		t.Errorf("demo user's ls --all: %+v", list)
	}
}

// TestRestartKeepsSupervisor: the holder keeps an agent's seccomp listener
// while the daemon is away; after SIGTERM and after SIGKILL the restarted
// daemon serves it again, so the adopted agent still opens what it may and
// is still refused (ECAPABILITY, in the chain) what it may not.
func TestRestartKeepsSupervisor(t *testing.T) {
	e := newEnv(t)
	e.demo()
	loop := `i=0; while :; do i=$((i+1)); read -r l < ~/projects/dream-team/README.md && echo "allowed $i"; ` +
		`read -r l < ~/.ssh/id_ed25519 && echo "key-read $i"; read -r -t 0.1 <> <(:) ; done`
	aid := mustAID(t, e.must("agent", "run", "--name", "looper", "--workdir", "/",
		"--cap", "fs.read:~/projects/**", "--", "/bin/bash", "-c", loop))
	id := strconv.FormatUint(aid, 10)
	// progress waits for new allowed reads and new refusals in the log.
	progress := func(what string) {
		t.Helper()
		start := e.must("agent", "logs", id)
		deadline := time.Now().Add(10 * time.Second)
		for {
			logs := e.must("agent", "logs", id)
			if strings.Contains(logs, "key-read") {
				t.Fatalf("%s: the key was read:\n%s", what, logs)
			}
			if strings.Count(logs, "allowed ") > strings.Count(start, "allowed ")+2 &&
				strings.Count(logs, "Unknown error 134") > strings.Count(start, "Unknown error 134")+2 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: no progress:\n%s", what, lastLines(logs, 10))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	progress("before restart")
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		e.stop(sig)
		time.Sleep(300 * time.Millisecond) // calls made now wait for a supervisor
		e.start()
		if a := e.agent(aid); !a.Adopted || (a.State != "Active" && a.State != "Capability-denied") {
			t.Fatalf("after %v: %+v", sig, a)
		}
		progress(fmt.Sprintf("after %v", sig))
		rows := e.rows("--aid", id, "--type", "cap.deny")
		if len(rows) == 0 || rows[len(rows)-1].Detail["source"] != "supervisor" {
			t.Fatalf("after %v: deny rows %+v", sig, rows)
		}
		e.countersAgree(3)
	}
	e.must("agent", "kill", id)
	e.must("audit", "verify")
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(l[max(0, len(l)-n):], "\n")
}
