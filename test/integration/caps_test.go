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

// TestGrantRevokePresent: grants within the ceiling take effect at once,
// beyond it nothing is granted; a revoked network capability fails the
// agent's next connect with ECAPABILITY; revoking a file capability
// quarantines the agent; presentations are answered and audited.
func TestGrantRevokePresent(t *testing.T) {
	e := newEnv(t)
	e.demo()
	idle, _ := net.Listen("tcp", "127.0.0.1:0")
	defer idle.Close()
	target, _ := net.Listen("tcp", "127.0.0.1:0")
	defer target.Close()
	go func() {
		for {
			c, err := target.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	ip := idle.Addr().(*net.TCPAddr).Port
	tp := target.Addr().(*net.TCPAddr).Port
	// fd 3 is a connection that never speaks: read -t on it is a sleep.
	// fd 5 holds /etc/hostname open for the whole run; /etc/debian_version
	// is opened anew on every round.
	loop := fmt.Sprintf(`exec 3<>/dev/tcp/127.0.0.1/%d; exec 5</etc/hostname; while :; do if (exec 4<>/dev/tcp/127.0.0.1/%d) 2>/dev/null; then echo ok; else echo no; fi; `+
		`if (read -r l < /etc/debian_version) 2>/dev/null; then echo dv-ok; else echo dv-no; fi; read -t 0.05 -u 3; done`, ip, tp)
	manifest := fmt.Sprintf(`apiVersion: coconut/v1
kind: Workload
metadata:
  name: caps
agents:
  - name: looper
    command: ["/bin/bash", "-c", %q]
    workdir: /
    capabilities: ["net.connect:127.0.0.1:%d", "fs.read:/etc/hostname", "fs.read:/etc/debian_version", "x.acme.email.send"]
    ceiling: ["net.connect:127.0.0.1:*", "fs.read:/etc/**", "x.acme.email.send"]
`, loop, ip)
	key := e.trustedKey("maya")
	aid := strings.TrimSpace(e.must("agent", "spawn", e.writeSigned("caps.yaml", manifest, key)))
	logs := func() string { return e.must("agent", "logs", aid) }
	waitLog := func(want string, after int) int {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			l := logs()
			if i := strings.Index(l[after:], want); i >= 0 {
				return after + i + len(want)
			}
			if time.Now().After(deadline) {
				t.Fatalf("log never showed %q after byte %d:\n%s", want, after, l)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	pos := waitLog("no\n", 0)

	// Beyond the ceiling: refused whole, nothing granted.
	_, errs, code := e.cli("agent", "grant", aid, fmt.Sprintf("net.connect:127.0.0.1:%d", tp), "net.connect:10.0.0.1:80")
	if code != 1 || !strings.Contains(errs, "beyond agent") || !strings.Contains(errs, "respawn") {
		t.Fatalf("grant beyond ceiling: exit %d %q", code, errs)
	}
	// Within it: the next connect works.
	e.must("agent", "grant", aid, fmt.Sprintf("net.connect:127.0.0.1:%d", tp))
	pos = waitLog("ok\n", len(logs()))

	// Revoke: once the call returned, no connect succeeds.
	e.must("agent", "revoke", aid, fmt.Sprintf("net.connect:127.0.0.1:%d", tp))
	mark := len(logs())
	time.Sleep(300 * time.Millisecond)
	after := logs()[mark:]
	// A connect that started before the revoke may still print ok once.
	lines := strings.Split(strings.TrimSpace(after), "\n")
	for i, l := range lines {
		if l == "ok" && i > 0 {
			t.Fatalf("connect succeeded after the revoke returned:\n%s", after)
		}
	}
	if !strings.Contains(after, "no") {
		t.Fatalf("no denied connect after revoke:\n%s", after)
	}
	_ = pos
	if rows := e.rows("--aid", aid, "--type", "cap.deny"); len(rows) == 0 {
		t.Error("no cap.deny rows")
	}
	if rows := e.rows("--aid", aid, "--type", "cap.grant"); len(rows) != 1 {
		t.Errorf("cap.grant rows: %d", len(rows))
	}

	// Presentations: held → allowed; not held → ECAPABILITY; both audited.
	e.must("agent", "present", aid, "x.acme.email.send", "to: boss@example.com")
	_, errs, code = e.cli("agent", "present", aid, "x.acme.email.delete")
	if code != 1 || !strings.Contains(errs, "does not hold") {
		t.Fatalf("present not held: exit %d %q", code, errs)
	}
	if _, errs, code = e.cli("agent", "present", aid, "fs.read:/etc/passwd"); code != 1 || !strings.Contains(errs, "enforced by the kernel") {
		t.Errorf("present fs: exit %d %q", code, errs)
	}
	pres := e.rows("--aid", aid, "--type", "cap.present")
	if len(pres) != 2 || pres[0].Result != "allow" || pres[1].Result != "deny" {
		t.Fatalf("present rows: %+v", pres)
	}

	// Revoking a file capability: the supervisor refuses the next open,
	// and the agent runs on.
	waitLog("dv-ok\n", 0)
	e.must("agent", "revoke", aid, "fs.read:/etc/debian_version")
	mark = len(logs())
	waitLog("dv-no\n", mark)
	time.Sleep(200 * time.Millisecond)
	if l := logs()[mark:]; strings.Contains(l[strings.Index(l, "dv-no\n"):], "dv-ok") {
		t.Fatalf("read after the revoke returned:\n%s", l)
	}
	n, _ := strconv.ParseUint(aid, 10, 64)
	if a := e.agent(n); a.State == "Quarantined" {
		t.Fatalf("quarantined although nothing was open under the scope: %+v", a)
	}
	// Revoking a scope the agent holds a file open under (fd 5) cannot
	// cut that descriptor: the agent is quarantined, and told why. The
	// revoke happened, so it exits 0; --json carries both facts.
	out, errs, code := e.cli("--json", "agent", "revoke", aid, "fs.read:/etc/hostname")
	if code != 0 || !strings.Contains(errs, "quarantined") || !strings.Contains(errs, "/etc/hostname") {
		t.Fatalf("revoke fs: exit %d %q", code, errs)
	}
	var rr struct {
		Revoked, Quarantined bool
		Reason               string
		Caps                 []string
	}
	if err := json.Unmarshal([]byte(out), &rr); err != nil || !rr.Revoked || !rr.Quarantined || !strings.Contains(rr.Reason, "/etc/hostname") || slices.Contains(rr.Caps, "fs.read:/etc/hostname") {
		t.Fatalf("revoke fs --json: %v %q", err, out)
	}
	e.waitState(n, "Quarantined")
	caps := e.must("agent", "caps", aid)
	if strings.Contains(caps, "fs.read:/etc/hostname") || strings.Contains(caps, strconv.Itoa(tp)) {
		t.Errorf("caps after revokes:\n%s", caps)
	}
	e.must("agent", "kill", aid)
}
