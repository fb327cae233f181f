package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestUnsupervisedFloorIsBundle: with the seccomp supervisor off
// (COCONUT_SUPERVISOR=off, or a holder that cannot start) nothing but the
// Landlock floor decides file access, so the floor must be the agent's
// bundle, not its ceiling: a file inside the ceiling but outside the
// bundle stays unreadable, and a file grant the floor cannot honour is
// refused whole instead of being recorded and silently not enforced.
func TestUnsupervisedFloorIsBundle(t *testing.T) {
	t.Setenv("COCONUT_SUPERVISOR", "off")
	e := newEnv(t)
	e.demo()
	if d := e.must("doctor"); !strings.Contains(d, "turned off") {
		t.Fatalf("doctor does not say the supervisor is off:\n%s", d)
	}
	loop := `while :; do if (read -r l < /etc/hostname) 2>/dev/null; then echo hn-ok; else echo hn-no; fi; ` +
		`if (read -r l < /etc/debian_version) 2>/dev/null; then echo dv-ok; else echo dv-no; fi; sleep 0.05; done`
	manifest := fmt.Sprintf(`apiVersion: coconut/v1
kind: Workload
metadata:
  name: unsup
agents:
  - name: reader
    command: ["/bin/bash", "-c", %q]
    workdir: /
    capabilities: ["fs.read:/etc/hostname", "fs.exec:/usr/bin/sleep", "net.connect:127.0.0.1:9"]
    ceiling: ["fs.read:/etc/**", "fs.exec:/usr/bin/sleep", "net.connect:127.0.0.1:*"]
`, loop)
	aid := strings.TrimSpace(e.must("agent", "spawn", e.writeSigned("unsup.yaml", manifest, e.trustedKey("maya"))))
	deadline := time.Now().Add(10 * time.Second)
	logs := ""
	for !strings.Contains(logs, "dv-") {
		if time.Now().After(deadline) {
			t.Fatalf("agent never ran its loop:\n%s", logs)
		}
		time.Sleep(50 * time.Millisecond)
		logs = e.must("agent", "logs", aid)
	}
	if !strings.Contains(logs, "hn-ok") || strings.Contains(logs, "dv-ok") || strings.Contains(logs, "denied") {
		t.Fatalf("unsupervised agent: want its bundle readable and the rest of its ceiling not:\n%s", logs)
	}
	// A file grant within the ceiling cannot take effect without the
	// supervisor: refused, nothing granted.
	_, errs, code := e.cli("agent", "grant", aid, "fs.read:/etc/debian_version")
	if code != 1 || !strings.Contains(errs, "respawn") || !strings.Contains(errs, "nothing was granted") {
		t.Fatalf("file grant without the supervisor: exit %d %q", code, errs)
	}
	if caps := e.must("agent", "caps", aid); strings.Contains(caps, "debian_version") {
		t.Errorf("refused grant still listed: %s", caps)
	}
	// The chain says so too: the decided grant is followed by its refusal.
	rows := e.rows("--aid", aid, "--type", "cap.grant")
	if len(rows) != 2 || rows[0].Result != "allow" || rows[1].Result != "deny" || !strings.Contains(rows[1].Detail["error"], "respawn") {
		t.Errorf("cap.grant rows for the refused grant: %+v", rows)
	}
	// The plain seccomp filter still refuses what no agent needs (here a
	// user namespace) with ECAPABILITY, unaudited: nothing to ask.
	un := mustAID(t, e.must("agent", "run", "--name", "unshare", "--workdir", "/",
		"--cap", "fs.exec:/usr/bin/perl", "--cap", "fs.read:/usr/share/perl/**", "--cap", "fs.read:/usr/lib/**",
		"--", "/usr/bin/perl", "-e", `my $r = syscall(272, 0x10000000); print "unshare errno=", ($r < 0 ? $!+0 : 0), "\n"`))
	if out := e.waitLog(un, "unshare errno="); !strings.Contains(out, "unshare errno=134") {
		t.Errorf("unsupervised agent's unshare(CLONE_NEWUSER): %q, want errno 134", out)
	}
	// A network grant is the guard's: it works without the supervisor.
	e.must("agent", "grant", aid, "net.connect:127.0.0.1:10")
	if caps := e.must("agent", "caps", aid); !strings.Contains(caps, "net.connect:127.0.0.1:10") {
		t.Errorf("network grant missing: %s", caps)
	}
}
