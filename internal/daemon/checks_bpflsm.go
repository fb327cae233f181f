package daemon

import (
	"strings"

	"github.com/coconut-os/coconut/api"
)

// bpfLSMSelftestCheck says whether the bpf-lsm backend's self-test passed
// (a program fired in a probe cgroup) and, when not, why and how to
// enable it: a listed bpf LSM is not enough (this project's hosts list it
// and refuse trampolines with EPERM).
func bpfLSMSelftestCheck(enforcer, why string) api.Check {
	if enforcer == "bpf-lsm" {
		return api.Check{Name: "bpf-lsm-selftest", OK: true, Detail: "BPF LSM programs fire on this kernel: " + why}
	}
	detail := why
	if i := strings.Index(why, "bpf-lsm: "); i >= 0 {
		detail = strings.TrimSuffix(why[i:], ")")
		if j := strings.Index(detail, "); "); j >= 0 {
			detail = detail[:j]
		}
	}
	return api.Check{Name: "bpf-lsm-selftest", OK: false, Detail: detail}
}
