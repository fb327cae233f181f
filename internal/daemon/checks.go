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
	return append(out, kernelAuditCheck())
}

// kernelAuditCheck says whether Landlock floor denials are logged. They
// are EACCES from the kernel, never seen by coconutd: the counters count
// what reaches the chain (the supervisor and the network guard).
func kernelAuditCheck() api.Check {
	const counters = "; doctor's counters count the denies that reach the audit chain (seccomp supervisor and network guard); " +
		"Landlock floor denials (EACCES, below the supervisor) are not in them"
	on, err := kernelAuditEnabled()
	switch {
	case err != nil:
		return api.Check{Name: "kernel-audit", OK: false, Detail: fmt.Sprintf("cannot ask the kernel audit subsystem (%v): "+
			"Landlock floor denials may go unlogged", err) + counters}
	case !on:
		return api.Check{Name: "kernel-audit", OK: false, Detail: "kernel audit is disabled (auditctl -e 1, or audit=1 on the kernel command line, to enable it): " +
			"Landlock floor denials are not logged anywhere" + counters}
	}
	return api.Check{Name: "kernel-audit", OK: true, Detail: "kernel audit is enabled: Landlock floor denials are logged by the kernel " +
		"(LANDLOCK_ACCESS records, with LANDLOCK_RESTRICT_SELF_LOG_NEW_EXEC_ON) in the kernel audit log" + counters}
}

// enforcerChecks reports what the loaded backend says about itself.
func enforcerChecks(enf any) []api.Check {
	var out []api.Check
	if p, ok := enf.(interface{ PinStatus() string }); ok {
		why := p.PinStatus()
		out = append(out, api.Check{Name: "netguard-pin", OK: strings.HasPrefix(why, "pinned"), Detail: why})
	}
	if p, ok := enf.(interface{ UnixSockets() (bool, string) }); ok {
		// Not OK in the fallback: it works, but costs a notification per
		// connect and has the supervisor's race (docs/security.md).
		hooks, why := p.UnixSockets()
		out = append(out, api.Check{Name: "unix-sockets", OK: hooks, Detail: why})
	}
	return out
}
