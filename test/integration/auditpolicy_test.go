package integration

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestAuditPolicy: allowed uses are recorded as the manifest's `audit:`
// block says (issue 3, item 7). Two agents do the same things — read one
// file three times and another once, append to a note twice, run a
// program twice, connect three times — one with a non-default policy
// (reads: all, writes: first, exec: all, connect: none), one with the
// default (reads: first, writes, exec and connect: all). The cap.use rows
// of each match its policy exactly.
func TestAuditPolicy(t *testing.T) {
	e := newEnv(t)
	uid, home := e.demo()
	proj := filepath.Join(home, "projects/dream-team")
	dir := filepath.Join(proj, "notes/auditpolicy")
	os.RemoveAll(dir)
	os.MkdirAll(dir, 0o755)
	os.Chown(dir, int(uid), int(uid))
	t.Cleanup(func() { os.RemoveAll(dir) })
	a, b := filepath.Join(proj, "audit-a.txt"), filepath.Join(proj, "audit-b.txt")
	for _, f := range []string{a, b} {
		os.WriteFile(f, []byte("line\n"), 0o644)
		t.Cleanup(func() { os.Remove(f) })
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	peer := fmt.Sprintf("tcp 127.0.0.1:%d", port)

	// Each agent appends to its own note.
	script := func(note string) string {
		return `set -e
read -r l < ` + a + `
read -r l < ` + a + `
read -r l < ` + a + `
read -r l < ` + b + `
echo one >> ` + note + `
echo two >> ` + note + `
/usr/bin/true
/usr/bin/true
for i in 1 2 3; do exec 7<>/dev/tcp/127.0.0.1/` + fmt.Sprint(port) + `; exec 7>&-; done
echo CASES-DONE
exec /usr/bin/sleep 600
`
	}
	spec := func(name, audit string) string {
		return fmt.Sprintf(`  - name: %s
    command: ["/bin/bash", "-c", %q]
    workdir: %s
    capabilities: ["fs.read:%s", "fs.read:%s", "fs.write:%s/**", "fs.exec:/usr/bin/true", "fs.exec:/usr/bin/sleep", "net.connect:127.0.0.1:%d"]
%s`, name, script(filepath.Join(dir, name)), proj, a, b, dir, port, audit)
	}
	key := e.trustedKey("auditpolicy")
	spawn := func(name, audit string) string {
		body := "apiVersion: coconut/v1\nkind: Workload\nmetadata:\n  name: " + name + "\nagents:\n" + spec(name, audit)
		id := strings.TrimSpace(e.must("agent", "spawn", e.writeSigned(name+".yaml", body, key)))
		e.waitLog(mustAID(t, id), "CASES-DONE")
		return id
	}
	// The custom agent runs first: allowed connects come through the
	// network guard's ring buffer in order, so once the default agent's
	// connects are in the chain, any of the custom agent's would be too.
	custom := spawn("custom", "    audit:\n      reads: all\n      writes: first\n      exec: all\n      connect: none\n")
	def := spawn("default", "")

	count := func(id, cap, object string) int {
		return countRows(e.capRows("--aid", id, "--type", "cap.use"), cap, object)
	}
	deadline := time.Now().Add(10 * time.Second)
	for count(def, "net.connect", peer) < 3 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	tests := []struct {
		name, cap, object string
		custom, def       int
	}{
		{"read a three times", "fs.read", a, 3, 1},
		{"read b once", "fs.read", b, 1, 1},
		{"append twice", "fs.write", "", 1, 2},
		{"exec twice", "fs.exec", "/usr/bin/true", 2, 2},
		{"connect three times", "net.connect", peer, 0, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, ag := range []struct {
				name, id string
				want     int
			}{{"custom", custom, tt.custom}, {"default", def, tt.def}} {
				object := tt.object
				if object == "" {
					object = filepath.Join(dir, ag.name)
				}
				if got := count(ag.id, tt.cap, object); got != ag.want {
					t.Errorf("%s policy: %d cap.use rows %s %s, want %d", ag.name, got, tt.cap, object, ag.want)
				}
			}
		})
	}
	// Both agents did the same things and no file use was refused (what
	// the network guard makes of the C library's own sockets is not this
	// test's business).
	for _, id := range []string{custom, def} {
		for _, r := range e.rows("--aid", id, "--type", "cap.deny") {
			if r.Detail["source"] == "supervisor" || r.Object == peer {
				t.Errorf("agent %s: unexpected deny %+v", id, r)
			}
		}
		e.must("agent", "kill", id)
	}
	e.must("audit", "verify")
}
