package netguard

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/coconut-os/coconut/internal/capability"
	"github.com/coconut-os/coconut/internal/policy"
)

// netCases are the table's network and Unix socket cases.
func netCases(root string) []policy.Case {
	var out []policy.Case
	for _, c := range policy.Conformance(root) {
		switch c.Op.(type) {
		case policy.Net, policy.Unix:
			out = append(out, c)
		}
	}
	return out
}

func conformanceCaps(t *testing.T, c policy.Case) []capability.Cap {
	t.Helper()
	b, err := c.Bundle()
	if err != nil {
		t.Fatal(err)
	}
	return b.Caps
}

// TestConformanceRules: the compiled trie, read as the kernel reads it,
// reaches the table's verdict on every connect and bind case.
func TestConformanceRules(t *testing.T) {
	n := 0
	for _, c := range policy.Conformance("/srv/conformance") {
		op, ok := c.Op.(policy.Net)
		if !ok {
			continue
		}
		rs, err := compile(conformanceCaps(t, c))
		if err != nil {
			t.Fatalf("case %q: %v", c.Name, err)
		}
		var verb uint8
		switch op.Verb {
		case "connect":
			verb = verbConnect
		case "bind":
			verb = verbBind
		default:
			continue // no such hook: nothing to compare
		}
		n++
		if got := rs.allows(verb, op.Addr, op.Port); got != c.Allow {
			t.Errorf("case %q: netguard rules allow=%v, policy table allow=%v", c.Name, got, c.Allow)
		}
	}
	t.Logf("%d conformance cases against the compiled rules", n)
}

// conformanceOp is the helper op for a case: a UDP sendto stands for a
// connect (no server needed, and the guard decides it on the same
// connect rules), a UDP bind for a bind, a stream connect for a Unix
// socket.
func conformanceOp(c policy.Case) (string, bool) {
	switch op := c.Op.(type) {
	case policy.Net:
		switch op.Verb {
		case "connect":
			return fmt.Sprintf("sendto udp %s %d", op.Addr, op.Port), true
		case "bind":
			return fmt.Sprintf("bind udp %s %d", op.Addr, op.Port), true
		}
	case policy.Unix:
		return "unix connect " + strings.Replace(op.Addr, "\x00", "@", 1), true
	}
	return "", false
}

// TestConformanceKernel: a real process in a guarded cgroup makes every
// network and Unix socket case's call; the kernel's answer (ECAPABILITY or
// not) must be the table's verdict.
func TestConformanceKernel(t *testing.T) {
	requireRoot(t)
	root := testRoot(t)
	g := loadGuard(t, root)
	dir := t.TempDir()
	n, nAllowed := 0, 0
	for i, cases := range policy.ByBundle(netCases(dir)) {
		k := strings.Join(cases[0].Caps, " ")
		id := uint32(i + 1)
		if err := g.SetPolicy(id, conformanceCaps(t, cases[0])); err != nil {
			t.Fatalf("bundle %q: %v", k, err)
		}
		var ops []string
		var run []policy.Case
		for _, c := range cases {
			if _, unixOp := c.Op.(policy.Unix); unixOp && !g.UnixHooks() {
				continue // the supervisor decides these (supervise's conformance test)
			}
			if op, ok := conformanceOp(c); ok {
				ops, run = append(ops, op), append(run, c)
			}
		}
		if len(ops) == 0 {
			continue
		}
		cg, cgID := mkCgroup(t, filepath.Join(root, "b"+strconv.Itoa(i)))
		if err := g.Bind(cgID, id); err != nil {
			t.Fatal(err)
		}
		got := runOps(t, cg, ops...)
		for j, c := range run {
			allowed := got[j] != denied
			if allowed {
				nAllowed++
			}
			if allowed != c.Allow {
				t.Errorf("case %q: kernel %s (%s), policy table allow=%v", c.Name, got[j], ops[j], c.Allow)
			}
		}
		n += len(run)
		if err := g.Unbind(cgID); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d conformance cases against the kernel's network guard (%d allowed, %d refused)", n, nAllowed, n-nAllowed)
}
