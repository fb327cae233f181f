package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// dreamTeam returns the example manifest with the agent binary pointed at
// the one built for this test run.
func dreamTeam(t *testing.T) string {
	b, err := os.ReadFile("../../examples/dream-team/dream-team.yaml")
	if err != nil {
		t.Fatal(err)
	}
	const installed = "/usr/local/libexec/coconut/dream-agent"
	if !strings.Contains(string(b), installed) {
		t.Fatalf("example no longer runs %s", installed)
	}
	return strings.ReplaceAll(string(b), installed, filepath.Join(bins, "dream-agent"))
}

func TestSpawnDreamTeam(t *testing.T) {
	e := newEnv(t)
	demoUID, _ := e.demo()
	key := e.trustedKey("maya")
	path := e.writeSigned("dream-team.yaml", dreamTeam(t), key)

	out := e.must("agent", "spawn", path)
	lines := strings.Fields(out)
	if len(lines) != 31 {
		t.Fatalf("want 31 AIDs, got %d: %q", len(lines), out)
	}
	agents := e.agents(false)
	if len(agents) != 31 {
		t.Fatalf("ls: %d agents", len(agents))
	}
	seenCG := map[uint64]bool{}
	classes := map[string]int{}
	var nosy agentJSON
	for i, a := range agents {
		if strconv.FormatUint(a.AID, 10) != lines[i] {
			t.Errorf("ls order/AIDs differ from spawn output: %d vs %s", a.AID, lines[i])
		}
		// The nosy reviewer's first probe may already have been refused
		// (and audited): it is then Capability-denied.
		wantState := a.State == "Active" || (a.Name == "nosy-reviewer" && a.State == "Capability-denied")
		if !wantState || a.UID != demoUID || a.User != demoUser {
			t.Errorf("agent %d: state %s uid %d user %s; denies %+v", a.AID, a.State, a.UID, a.User,
				e.rows("--aid", strconv.FormatUint(a.AID, 10), "--type", "cap.deny"))
		}
		if seenCG[a.CgroupID] || a.CgroupID == 0 {
			t.Errorf("agent %d: cgroup id %d reused or zero", a.AID, a.CgroupID)
		}
		seenCG[a.CgroupID] = true
		classes[a.Class]++
		// The kernel agrees: the process is in the agent's own cgroup,
		// with no capabilities and no_new_privs.
		cg, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", a.PID))
		if !strings.Contains(string(cg), "0::") || !strings.HasSuffix(strings.TrimSpace(lastLine(string(cg))), fmt.Sprintf("/agent-%d", a.AID)) {
			t.Errorf("agent %d: /proc/%d/cgroup = %q", a.AID, a.PID, cg)
		}
		st := procStatus(t, a.PID)
		for _, want := range []string{"CapEff:\t0000000000000000", "CapBnd:\t0000000000000000", "NoNewPrivs:\t1"} {
			if !strings.Contains(st, want) {
				t.Errorf("agent %d lacks %q", a.AID, want)
			}
		}
		if a.Name == "nosy-reviewer" {
			nosy = a
		}
	}
	if classes["planner"] != 1 || classes["researcher"] != 10 || classes["coder"] != 10 || classes["reviewer"] != 10 {
		t.Errorf("classes: %v", classes)
	}

	// Every agent has its spawn, attest and Attested/Active rows.
	for _, a := range agents[:3] {
		var kinds []string
		for _, r := range e.rows("--aid", strconv.FormatUint(a.AID, 10)) {
			kinds = append(kinds, r.Type+":"+r.Object)
		}
		got := strings.Join(kinds, " ")
		for _, want := range []string{"agent.spawn:", "agent.attest:", "agent.state:Attested", "agent.state:Active"} {
			if !strings.Contains(got, want) {
				t.Errorf("agent %d rows %q lack %q", a.AID, got, want)
			}
		}
	}

	// The nosy reviewer tries the key and is refused with ECAPABILITY (the
	// seccomp supervisor, above the Landlock floor); the others do their
	// work: notes appear where they may write.
	deadline := time.Now().Add(10 * time.Second)
	for {
		logs := e.must("agent", "logs", strconv.FormatUint(nosy.AID, 10))
		if strings.Contains(logs, "probe: read ") {
			if !strings.Contains(logs, "denied errno=134") || strings.Contains(logs, "succeeded") {
				t.Fatalf("the probe was not refused:\n%s", logs)
			}
			// The probe comes first in each step; its notes follow.
			if strings.Contains(logs, "wrote notes/reviewer/") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the reviewer could not write its notes:\n%s", logs)
			}
		} else if time.Now().After(deadline) {
			t.Fatalf("nosy reviewer never probed:\n%s", logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The refusal is in the chain, and the nosy reviewer is marked.
	if rows := e.rows("--aid", strconv.FormatUint(nosy.AID, 10), "--type", "cap.deny"); len(rows) == 0 ||
		!strings.HasSuffix(rows[0].Object, "/.ssh/id_ed25519") || rows[0].Detail["source"] != "supervisor" {
		t.Errorf("nosy reviewer's deny rows: %+v", rows)
	}
	e.waitState(nosy.AID, "Capability-denied")

	// kill: Terminated-revoked, every process gone, the cgroup removed.
	victim := agents[4]
	e.must("agent", "kill", strconv.FormatUint(victim.AID, 10))
	a := e.waitState(victim.AID, "Terminated-revoked")
	if !gone(victim.PID) {
		t.Errorf("killed agent's pid %d still alive", victim.PID)
	}
	if _, err := os.Stat(victim.CgroupPath); !os.IsNotExist(err) {
		t.Errorf("cgroup %s still there: %v", victim.CgroupPath, err)
	}
	if !strings.Contains(a.Reason, "killed by uid 0") {
		t.Errorf("reason %q", a.Reason)
	}
	if len(e.agents(false)) != 30 {
		t.Errorf("ls after kill: want 30 running")
	}
	// Killing it again is idempotent: it says the agent already ended,
	// exits 0 and writes no row.
	before := len(e.rows("--aid", strconv.FormatUint(victim.AID, 10)))
	if out, errs, code := e.cli("agent", "kill", strconv.FormatUint(victim.AID, 10)); code != 0 || !strings.Contains(out, "already ended (Terminated-revoked)") {
		t.Errorf("second kill: exit %d %q %q", code, out, errs)
	}
	if out, _, code := e.cli("--json", "agent", "kill", strconv.FormatUint(victim.AID, 10)); code != 0 || !strings.Contains(out, `"already_ended": true`) || !strings.Contains(out, `"state": "Terminated-revoked"`) {
		t.Errorf("second kill --json: exit %d %q", code, out)
	}
	if after := len(e.rows("--aid", strconv.FormatUint(victim.AID, 10))); after != before {
		t.Errorf("second kill wrote %d rows", after-before)
	}
	if _, errs, code := e.cli("agent", "kill", "999999"); code != 1 || !strings.Contains(errs, "no agent 999999") {
		t.Errorf("kill unknown: exit %d %q", code, errs)
	}
	if _, _, code := e.cli("agent", "kill", "abc"); code != 2 {
		t.Errorf("kill abc: exit %d, want 2 (usage)", code)
	}
	e.must("audit", "verify")
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for _, l := range lines {
		if strings.HasPrefix(l, "0::") {
			return l
		}
	}
	return lines[len(lines)-1]
}

func TestAttestation(t *testing.T) {
	e := newEnv(t)
	e.demo()
	key := e.trustedKey("maya")
	path := e.writeSigned("one.yaml", oneAgent("worker", "/bin/sleep", "600"), key)
	aid := strings.TrimSpace(e.must("agent", "spawn", path))

	var claims struct {
		AID        uint64 `json:"aid"`
		CgroupID   uint64 `json:"cgroup_id"`
		Authorizer struct {
			UID   uint32 `json:"uid"`
			KeyID string `json:"key_id"`
			Via   string `json:"via"`
		} `json:"authorizer"`
		Manifest struct {
			SHA256      string `json:"sha256"`
			SignerKeyID string `json:"signer_key_id"`
		} `json:"manifest"`
		Binary struct{ Path, SHA256 string } `json:"binary"`
	}
	if err := json.Unmarshal([]byte(e.must("agent", "attest", aid, "--verify", "--json")), &claims); err != nil {
		t.Fatal(err)
	}
	a := e.agent(claims.AID)
	if strconv.FormatUint(claims.AID, 10) != aid || claims.CgroupID != a.CgroupID || claims.Authorizer.Via != "manifest" ||
		claims.Binary.Path != "/bin/sleep" || len(claims.Manifest.SHA256) != 64 || !strings.HasPrefix(claims.Manifest.SignerKeyID, "ed25519:") {
		t.Fatalf("claims: %+v", claims)
	}
	// The key was added by root, who asked: the authorizer's key is named.
	if claims.Authorizer.UID != 0 || claims.Authorizer.KeyID != claims.Manifest.SignerKeyID {
		t.Errorf("authorizer %+v", claims.Authorizer)
	}

	// Offline: a saved envelope verifies; one changed byte anywhere fails.
	saved := filepath.Join(e.dir, "att.json")
	e.must("agent", "attest", aid, "--out", saved)
	e.must("agent", "attest", "--verify", "--file", saved)
	env, _ := os.ReadFile(saved)
	for _, pos := range []int{0, len(env) / 3, len(env) / 2, len(env) - 2} {
		bad := append([]byte{}, env...)
		bad[pos] ^= 0x01
		tampered := filepath.Join(e.dir, fmt.Sprintf("bad-%d.json", pos))
		os.WriteFile(tampered, bad, 0o644)
		if _, _, code := e.cli("agent", "attest", "--verify", "--file", tampered); code != 1 {
			t.Errorf("byte %d flipped: verify exit %d, want 1", pos, code)
		}
	}
}

func TestAgentRun(t *testing.T) {
	e := newEnv(t)
	demoUID, _ := e.demo()
	out := e.must("agent", "run", "--name", "hello", "--cap", "fs.read:~/projects/**", "--cap", "fs.exec:/usr/bin/**", "--workdir", "/", "--", "/bin/sh", "-c", "echo hello $COCONUT_AGENT_NAME; id -u; exit 3")
	aid, err := strconv.ParseUint(strings.TrimSpace(out), 10, 64)
	if err != nil {
		t.Fatalf("run printed %q", out)
	}
	a := e.waitState(aid, "Terminated-clean")
	if a.ExitStatus == nil || *a.ExitStatus != 3 || a.UID != demoUID {
		t.Fatalf("agent: %+v", a)
	}
	logs := e.must("agent", "logs", out[:len(out)-1])
	if logs != fmt.Sprintf("hello hello\n%d\n", demoUID) {
		t.Errorf("logs %q", logs)
	}
	caps := e.must("agent", "caps", strconv.FormatUint(aid, 10), "--json")
	if !strings.Contains(caps, `"fs.read:/home/`+demoUser+`/projects/**"`) {
		t.Errorf("caps not expanded: %s", caps)
	}
	var claims struct {
		Authorizer struct{ Via string } `json:"authorizer"`
		Manifest   *struct{}            `json:"manifest"`
	}
	json.Unmarshal([]byte(e.must("agent", "attest", strconv.FormatUint(aid, 10), "--verify", "--json")), &claims)
	if claims.Authorizer.Via != "command-line" || claims.Manifest != nil {
		t.Errorf("run attestation: %+v", claims)
	}
	// A relative command is resolved by the CLI on the caller's PATH.
	out = e.must("agent", "run", "--", "true")
	e.waitState(mustAID(t, out), "Terminated-clean")
	// Usage errors exit 2.
	if _, _, code := e.cli("agent", "run", "/bin/true"); code != 2 {
		t.Errorf("run without --: exit %d", code)
	}
}

func mustAID(t *testing.T, s string) uint64 {
	t.Helper()
	aid, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
	if err != nil {
		t.Fatalf("not an AID: %q", s)
	}
	return aid
}

// oneAgent is a minimal manifest running command as one agent.
func oneAgent(name string, command ...string) string {
	quoted := make([]string, len(command))
	for i, c := range command {
		quoted[i] = strconv.Quote(c)
	}
	return fmt.Sprintf(`apiVersion: coconut/v1
kind: Workload
metadata:
  name: %s
agents:
  - name: %s
    command: [%s]
    workdir: /
`, name, name, strings.Join(quoted, ", "))
}
