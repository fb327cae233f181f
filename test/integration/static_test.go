package integration

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestStaticEnforcement: an agent spawned with `enforcement: static` reads
// what its bundle allows with no supervisor in the way, and is refused the
// rest by its Landlock floor (EACCES, no row: the trade documented in
// docs/security.md); writes and refused calls are still supervised and
// audited; nothing beyond the bundle can be granted; a file revocation
// freezes it and says why; the counters still agree.
func TestStaticEnforcement(t *testing.T) {
	e := newEnv(t)
	_, home := e.demo()
	secret := filepath.Join(home, ".ssh/id_ed25519")
	script := `try() { if out=$(eval "$2" 2>&1 </dev/null); then echo "CASE $1: ok"; else echo "CASE $1: fail: $(echo $out | tr '\n' ' ')"; fi; }
try read-allowed 'read -r l < /etc/hostname'
try read-denied 'read -r l < ` + secret + `'
try write-denied 'echo x > /etc/coconut-static-test'
try unshare '/usr/bin/perl -e '"'"'my $r = syscall(272, 0x10000000); if ($r < 0) { print STDERR "errno=", $!+0, "\n"; exit 1 }'"'"''
echo CASES-DONE
exec /usr/bin/sleep 600
`
	manifest := fmt.Sprintf(`apiVersion: coconut/v1
kind: Workload
metadata:
  name: static
agents:
  - name: reader
    command: ["/bin/bash", "-c", %q]
    workdir: /
    enforcement: static
    capabilities: ["fs.read:/etc/hostname", "fs.exec:/usr/bin/perl", "fs.exec:/usr/bin/sleep", "fs.exec:/usr/bin/tr", "fs.read:/usr/share/perl/**"]
`, script)
	key := e.trustedKey("static")
	id := strings.TrimSpace(e.must("agent", "spawn", e.writeSigned("static.yaml", manifest, key)))
	aid, _ := strconv.ParseUint(id, 10, 64)
	var logs string
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(logs, "CASES-DONE") {
		if time.Now().After(deadline) {
			t.Fatalf("static agent did not finish:\n%s", logs)
		}
		time.Sleep(100 * time.Millisecond)
		logs = e.must("agent", "logs", id)
	}
	t.Logf("static agent:\n%s", logs)
	denies := e.rows("--aid", id, "--type", "cap.deny")
	hasRow := func(object string) bool {
		for _, r := range denies {
			if r.Object == object {
				return true
			}
		}
		return false
	}
	tests := []struct {
		name, want, row string
		noRow           bool
	}{
		{"read-allowed", "ok", "", false},
		{"read-denied", "Permission denied", secret, true}, // the floor: EACCES, unaudited
		{"write-denied", "134", "/etc/coconut-static-test", false},
		{"unshare", "errno=134", "unshare flags=0x10000000", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			line := ""
			for _, l := range strings.Split(logs, "\n") {
				if strings.HasPrefix(l, "CASE "+tt.name+": ") {
					line = l
				}
			}
			if !strings.Contains(line, tt.want) {
				t.Fatalf("want %q in %q", tt.want, line)
			}
			switch {
			case tt.row == "":
			case tt.noRow && hasRow(tt.row):
				t.Errorf("a row for %s: static reads never reach the supervisor", tt.row)
			case !tt.noRow && !hasRow(tt.row):
				t.Errorf("no cap.deny row for %s", tt.row)
			}
		})
	}
	e.countersAgree(uint64(len(denies)))

	// The floor is the bundle: nothing beyond it can be granted.
	_, errs, code := e.cli("agent", "grant", id, "fs.read:/etc/debian_version")
	if code != 1 || !strings.Contains(errs, "respawn") {
		t.Fatalf("grant beyond a static bundle: exit %d %q", code, errs)
	}
	// A revoked read cannot be enforced by the floor: the agent is frozen
	// and the user told why.
	_, errs, code = e.cli("agent", "revoke", id, "fs.read:/etc/hostname")
	if code != 0 || !strings.Contains(errs, "quarantined") || !strings.Contains(errs, "enforcement: static") {
		t.Fatalf("revoke on a static agent: exit %d %q", code, errs)
	}
	e.waitState(aid, "Quarantined")
	e.must("agent", "kill", id)
}
