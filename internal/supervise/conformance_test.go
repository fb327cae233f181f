package supervise

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/coconut-os/coconut/internal/policy"
)

// conformanceTree makes policy.Files under a fresh directory: files are
// copies of /usr/bin/true, so that exec cases run a real program.
func conformanceTree(t *testing.T) string {
	t.Helper()
	root, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.ReadFile("/usr/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range policy.Files(root) {
		if strings.HasSuffix(p, "/") {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, exe, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// conformanceOp is the probe op for a file or Unix socket case.
func conformanceOp(c policy.Case) (string, bool) {
	switch op := c.Op.(type) {
	case policy.File:
		switch op.Access {
		case policy.Read:
			return "read:" + op.Path, true
		case policy.Write:
			return "write:" + op.Path, true
		case policy.Exec:
			return "exec:" + op.Path, true
		case policy.Read | policy.Write:
			return "rdwr:" + op.Path, true
		}
	case policy.Unix:
		return "uconnect:" + strings.Replace(op.Addr, "\x00", "@", 1), true
	}
	return "", false
}

// TestConformanceSupervisor: one supervised agent per bundle of the
// policy's table opens, writes and executes the real files of every file
// case (and, with the Unix fallback's filter, connects every Unix socket
// case); the errno it gets (ECAPABILITY or not) must be the table's
// verdict. The bundle also execs the probe itself, which no case's path
// is.
func TestConformanceSupervisor(t *testing.T) {
	needRoot(t)
	t.Setenv(trapUnixEnv, "1")
	root := conformanceTree(t)
	var cases []policy.Case
	for _, c := range policy.Conformance(root) {
		if _, ok := conformanceOp(c); !ok {
			continue
		}
		if f, ok := c.Op.(policy.File); ok && !strings.HasPrefix(f.Path, root+"/") {
			if _, err := os.Stat(f.Path); err != nil {
				continue // a system path this machine lacks
			}
		}
		cases = append(cases, c)
	}
	n, nAllowed := 0, 0
	for _, cases := range policy.ByBundle(cases) {
		b, err := cases[0].Bundle()
		if err != nil {
			t.Fatal(err)
		}
		d := newTestDecider(append(b.Caps, parseCaps([]string{"fs.exec:" + self(t)})...))
		ops := make([]string, len(cases))
		for i, c := range cases {
			ops[i], _ = conformanceOp(c)
		}
		got, _ := runAgent(t, AgentInfo{AID: 9}, d, ops...)
		for i, c := range cases {
			e, ok := got[ops[i]]
			if !ok {
				t.Errorf("case %q: no result for %s", c.Name, ops[i])
				continue
			}
			// Strict both ways: an allowed case must succeed, a denied one
			// must be ECAPABILITY. An allowed Unix connect has no listener
			// behind it: ENOENT or ECONNREFUSED is the kernel's answer to
			// a call the supervisor let through.
			allowed := e == 0
			if strings.HasPrefix(ops[i], "uconnect:") && (e == int(unix.ENOENT) || e == int(unix.ECONNREFUSED)) {
				allowed = true
			}
			if !allowed && e != int(ECapability) {
				t.Errorf("case %q: supervisor errno %d (%s): neither success nor ECAPABILITY", c.Name, e, ops[i])
				continue
			}
			if allowed {
				nAllowed++
			}
			if allowed != c.Allow {
				t.Errorf("case %q: supervisor errno %d (%s), policy table allow=%v", c.Name, e, ops[i], c.Allow)
			}
			n++
		}
	}
	t.Logf("%d conformance cases against the supervisor (%d allowed, %d refused)", n, nAllowed, n-nAllowed)
}
