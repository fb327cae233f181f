package enforce

import (
	"os"

	"github.com/coconut-os/coconut/internal/capability"
	"github.com/coconut-os/coconut/internal/launch"
	pol "github.com/coconut-os/coconut/internal/policy"
)

// Baseline lists the baseline (pol.System) as capability strings, for
// attestations.
func Baseline() []string { return pol.System.Strings() }

// Floor turns a ceiling into the Landlock floor: pol.CompileFloor,
// which says where the floor is coarser than the policy, with the paths
// that do not exist left out (Landlock rules attach to inodes).
//
// TCP stays with cgroup BPF: Landlock's connect/bind hook runs before
// the cgroup hook and would answer EACCES, unaudited, where the guard
// answers ECAPABILITY with a kernel sequence number and revokes at once.
// (launch.Floor can still handle TCP ports, for a Landlock-only mode.)
func Floor(ceiling []capability.Cap) *launch.Floor {
	p := pol.CompileFloor(ceiling, pol.System, func(p string) bool {
		_, err := os.Stat(p)
		return err == nil
	})
	return &launch.Floor{Read: p.Read, Write: p.Write, Exec: p.Exec}
}
