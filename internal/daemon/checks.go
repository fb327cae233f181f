package daemon

import (
	"fmt"
	"os"
	"strings"

	"github.com/coconut-os/coconut/api"
	"github.com/coconut-os/coconut/internal/cgroup"
)

// kernelChecks reports what this kernel offers the enforcer backends.
func kernelChecks(tree *cgroup.Tree) []api.Check {
	var out []api.Check
	out = append(out, api.Check{Name: "cgroup2", OK: true, Detail: "unified hierarchy at " + tree.Mount + ", agents under " + tree.Root})
	if _, err := os.Stat(tree.Root + "/cgroup.kill"); err == nil {
		out = append(out, api.Check{Name: "cgroup.kill", OK: true, Detail: "atomic kill of an agent's processes"})
	} else {
		out = append(out, api.Check{Name: "cgroup.kill", OK: false, Detail: "missing (Linux < 5.14): agents are killed pid by pid"})
	}
	lsm, err := os.ReadFile("/sys/kernel/security/lsm")
	switch {
	case err != nil:
		out = append(out, api.Check{Name: "lsm", OK: false, Detail: fmt.Sprintf("cannot read the active LSM list (%v): is securityfs mounted?", err)})
	default:
		list := strings.TrimSpace(string(lsm))
		hasBPF := false
		for _, l := range strings.Split(list, ",") {
			hasBPF = hasBPF || l == "bpf"
		}
		detail := "active LSMs: " + list
		if !hasBPF {
			detail += "; BPF LSM is not active: add bpf to the kernel's lsm= boot parameter to enable the bpf-lsm backend"
		}
		out = append(out, api.Check{Name: "bpf-lsm", OK: hasBPF, Detail: detail})
	}
	return out
}
