package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestDelegation: agent A holds cap.grant:fs.read:X/**; over the API it
// spawns B and grants B a subset (allowed), is refused beyond its scope,
// and when A loses the grant scope B loses what it reached by delegation:
// B's next open gets ECAPABILITY.
func TestDelegation(t *testing.T) {
	e := newEnv(t)
	uid, home := e.demo()
	x := filepath.Join(home, "projects/dream-team/deleg")
	os.MkdirAll(filepath.Join(x, "y"), 0o755)
	os.WriteFile(filepath.Join(x, "y/f"), []byte("secret\n"), 0o644)
	os.Chown(x, int(uid), int(uid))
	t.Cleanup(func() { os.RemoveAll(x) })
	coconut := filepath.Join(bins, "coconut")
	// B reads x/y/f until it is granted, then until refused (builtins
	// only: it holds no exec), says so and ends.
	bLoop := fmt.Sprintf(`said=; while :; do if (read -r l < %s/y/f) 2>/dev/null; then [ -z "$said" ] && echo READ ok; said=1; elif [ -n "$said" ]; then echo READ no; exit 0; fi; done`, x)
	aScript := fmt.Sprintf(`b=$(%[1]s agent run --name child --workdir / -- /bin/bash -c %[2]s) || { echo "SPAWN failed"; exit 1; }; echo "CHILD $b"; `+
		`%[1]s agent grant $b fs.read:%[3]s/y/** && echo GRANT-OK; `+
		`%[1]s agent grant $b fs.read:/etc/** 2>&1 | tr '\n' ' '; echo; echo BEYOND-DONE; exec sleep 600`, coconut, shQuote(bLoop), x)
	a := mustAID(t, e.must("agent", "run", "--name", "parent", "--workdir", "/",
		"--cap", "cap.grant:fs.read:"+x+"/**", "--cap", "fs.exec:"+bins+"/**", "--cap", "fs.read:"+bins+"/**",
		"--cap", "fs.exec:/usr/bin/**", "--cap", "fs.exec:/bin/**", "--", "/bin/bash", "-c", aScript))
	aid := strconv.FormatUint(a, 10)
	var logs string
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(logs, "BEYOND-DONE"); {
		if time.Now().After(deadline) {
			t.Fatalf("parent did not finish:\n%s", logs)
		}
		time.Sleep(100 * time.Millisecond)
		logs = e.must("agent", "logs", aid)
	}
	t.Logf("parent:\n%s", logs)
	if !strings.Contains(logs, "GRANT-OK") {
		t.Fatalf("grant within scope refused:\n%s", logs)
	}
	if !strings.Contains(logs, "beyond its cap.grant") {
		t.Errorf("grant beyond scope not refused as such:\n%s", logs)
	}
	var child uint64
	for _, l := range strings.Split(logs, "\n") {
		if v, ok := strings.CutPrefix(l, "CHILD "); ok {
			child = mustAID(t, v)
		}
	}
	cid := strconv.FormatUint(child, 10)
	caps := e.must("agent", "caps", cid)
	if !strings.Contains(caps, "fs.read:"+x+"/y/**") || strings.Contains(caps, "/etc/") {
		t.Fatalf("child caps: %s", caps)
	}
	waitLog := func(want string, after int) int {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			l := e.must("agent", "logs", cid)
			if after <= len(l) {
				if i := strings.Index(l[after:], want); i >= 0 {
					return after + i + len(want)
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("child log never showed %q:\n%s", want, l)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitLog("READ ok\n", 0)
	// The user revokes A's grant scope: B loses what it reached through it.
	mark := len(e.must("agent", "logs", cid))
	e.must("agent", "revoke", aid, "cap.grant:fs.read:"+x+"/**")
	waitLog("READ no\n", mark)
	if c := e.must("agent", "caps", cid); strings.Contains(c, x) {
		t.Errorf("child still holds the delegated capability: %s", c)
	}
	rows := e.rows("--aid", cid, "--type", "cap.revoke")
	if len(rows) != 1 || !strings.Contains(rows[0].Detail["cause"], "delegated by agent "+aid) {
		t.Errorf("child revoke rows: %+v", rows)
	}
	if d := e.rows("--aid", cid, "--type", "cap.deny"); len(d) == 0 || !strings.Contains(d[len(d)-1].Object, x+"/y/f") {
		t.Errorf("child deny rows: %+v", d)
	}
}
