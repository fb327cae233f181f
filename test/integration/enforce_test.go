package integration

import (
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestNetworkEnforced: an agent may connect where its bundle says and
// nowhere else; the kernel answers ECAPABILITY, the deny is a chain row
// with the kernel's sequence number, the agent is Capability-denied, and
// doctor's kernel and chain counters agree.
func TestNetworkEnforced(t *testing.T) {
	e := newEnv(t)
	e.demo()
	allowed, _ := net.Listen("tcp", "127.0.0.1:0")
	defer allowed.Close()
	other, _ := net.Listen("tcp", "127.0.0.1:0")
	defer other.Close()
	ap := allowed.Addr().(*net.TCPAddr).Port
	op := other.Addr().(*net.TCPAddr).Port
	script := fmt.Sprintf("exec 3<>/dev/tcp/127.0.0.1/%d && echo allowed-ok; exec 4<>/dev/tcp/127.0.0.1/%d && echo other-ok; read -t 1 -u 3; exit 0", ap, op)
	aid := mustAID(t, e.must("agent", "run", "--name", "netter", "--workdir", "/",
		"--cap", fmt.Sprintf("net.connect:127.0.0.1:%d", ap), "--", "/bin/bash", "-c", script))
	a := e.waitState(aid, "Terminated-clean")
	logs := e.must("agent", "logs", strconv.FormatUint(aid, 10))
	if !strings.Contains(logs, "allowed-ok") || strings.Contains(logs, "other-ok") || !strings.Contains(logs, "Unknown error 134") {
		t.Fatalf("agent log:\n%s", logs)
	}
	_ = a
	rows := e.rows("--aid", strconv.FormatUint(aid, 10), "--type", "cap.deny")
	if len(rows) != 1 || rows[0].Result != "deny" || !strings.Contains(rows[0].Object, strconv.Itoa(op)) {
		t.Fatalf("deny rows: %+v", rows)
	}
	var states []string
	for _, r := range e.rows("--aid", strconv.FormatUint(aid, 10), "--type", "agent.state") {
		states = append(states, r.Object)
	}
	if !strings.Contains(strings.Join(states, ","), "Capability-denied") {
		t.Errorf("states %v lack Capability-denied", states)
	}
	var doc struct {
		Enforcer string            `json:"enforcer"`
		Counters map[string]uint64 `json:"counters"`
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		json.Unmarshal([]byte(e.must("doctor", "--json")), &doc)
		if doc.Counters["kernel_denies"] == doc.Counters["chain_denies"] && doc.Counters["kernel_denies"] >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("doctor counters disagree: %v", doc.Counters)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if doc.Enforcer != "portable" {
		t.Errorf("enforcer %q", doc.Enforcer)
	}
}

// TestFloorHoldsFiles: outside its bundle an agent cannot read a file (the
// seccomp supervisor answers ECAPABILITY, above the Landlock floor), the
// deny is a chain row from the supervisor, and the attestation records the
// backend and the rights the kernel enforces.
func TestFloorHoldsFiles(t *testing.T) {
	e := newEnv(t)
	_, home := e.demo()
	aid := mustAID(t, e.must("agent", "run", "--name", "reader", "--workdir", "/",
		"--cap", "fs.read:~/projects/**", "--", "/bin/bash", "-c",
		"read -r l < ~/projects/dream-team/README.md && echo project-ok; read -r l < ~/.ssh/id_ed25519 && echo key-read"))
	e.waitState(aid, "Terminated-clean")
	logs := e.must("agent", "logs", strconv.FormatUint(aid, 10))
	if !strings.Contains(logs, "project-ok") || strings.Contains(logs, "key-read") || !strings.Contains(logs, home+"/.ssh/id_ed25519: Unknown error 134") {
		t.Fatalf("agent log:\n%s", logs)
	}
	rows := e.rows("--aid", strconv.FormatUint(aid, 10), "--type", "cap.deny")
	if len(rows) != 1 || rows[0].Object != home+"/.ssh/id_ed25519" || rows[0].Detail["source"] != "supervisor" {
		t.Fatalf("deny rows: %+v", rows)
	}
	if uses := e.rows("--aid", strconv.FormatUint(aid, 10), "--type", "cap.use"); !slices.ContainsFunc(uses, func(r row) bool {
		return r.Object == home+"/projects/dream-team/README.md"
	}) {
		t.Errorf("the first read of the project file is not in the chain: %+v", uses)
	}
	e.countersAgree(1)
	var claims struct {
		Enforcement struct {
			Backend      string   `json:"backend"`
			KernelRights []string `json:"kernel_rights"`
		} `json:"enforcement"`
	}
	json.Unmarshal([]byte(e.must("agent", "attest", strconv.FormatUint(aid, 10), "--verify", "--json")), &claims)
	rights := strings.Join(claims.Enforcement.KernelRights, " ")
	if claims.Enforcement.Backend != "portable" || !strings.Contains(rights, "fs.read") || !strings.Contains(rights, "netguard.connect") || !strings.Contains(rights, "supervisor.open") {
		t.Errorf("attested enforcement: %+v", claims.Enforcement)
	}
}

// countersAgree waits until doctor's kernel and chain deny counters are
// equal and at least min.
func (e *env) countersAgree(min uint64) map[string]uint64 {
	e.t.Helper()
	var doc struct {
		Counters map[string]uint64 `json:"counters"`
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		json.Unmarshal([]byte(e.must("doctor", "--json")), &doc)
		if doc.Counters["kernel_denies"] == doc.Counters["chain_denies"] && doc.Counters["kernel_denies"] >= min {
			return doc.Counters
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("doctor counters disagree (want ≥ %d): %v", min, doc.Counters)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
