package bpflsm

import (
	"errors"
	"testing"

	"github.com/coconut-os/coconut/internal/policy"
)

// TestConformanceCompile: for every file case of the policy's table,
// the compiled trie read as the programs read it (bpf/include/lsm.h: read
// is implied by write and exec) reaches the table's verdict, or the
// bundle is refused whole with ErrInexpressible (a glob inside a
// component), which fails closed at spawn. The guest tests run the same
// table against the programs in the VM (policy.Conformance is exported
// for them).
func TestConformanceCompile(t *testing.T) {
	base := Baseline{Read: policy.System.Read, Write: policy.System.Write, Exec: policy.System.Exec}
	n, refused := 0, 0
	for _, c := range policy.Conformance("/srv/conformance") {
		op, ok := c.Op.(policy.File)
		if !ok || op.Access == 0 {
			continue
		}
		b, err := c.Bundle()
		if err != nil {
			t.Fatal(err)
		}
		pol, err := Compile(b.Caps, base)
		if errors.Is(err, ErrInexpressible) {
			refused++
			continue
		}
		if err != nil {
			t.Fatalf("case %q: %v", c.Name, err)
		}
		r := Decide(pol.Files, op.Path)
		got := true
		if op.Access&policy.Read != 0 && r&(RightRead|RightWrite|RightExec) == 0 {
			got = false
		}
		if op.Access&policy.Write != 0 && r&RightWrite == 0 {
			got = false
		}
		if op.Access&policy.Exec != 0 && r&RightExec == 0 {
			got = false
		}
		n++
		if got != c.Allow {
			t.Errorf("case %q: bpf-lsm rules give rights %#x (allow=%v), policy table allow=%v", c.Name, r, got, c.Allow)
		}
	}
	t.Logf("%d file cases against the compiled bpf-lsm rules, %d refused at compile (globs)", n, refused)
}
