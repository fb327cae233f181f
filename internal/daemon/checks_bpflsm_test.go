package daemon

import (
	"strings"
	"testing"
)

func TestBPFLSMSelftestCheck(t *testing.T) {
	// The shape enforce.Choose gives on this project's hosts.
	why := "portable: Landlock floor and cgroup BPF network guard (enforcer unavailable: bpf-lsm: BPF LSM unavailable: the kernel refuses BPF LSM programs (load program: operation not permitted): the kernel refuses trampoline programs (lsm/, fentry/: BPF_PROG_LOAD EPERM) even where bpf is in its LSM list; use a kernel that allows them, booted with bpf in lsm= (/sys/kernel/security/lsm is missing: securityfs is not mounted, so the active LSM list could not be read)); seccomp supervisor on"
	c := bpfLSMSelftestCheck("portable", why)
	if c.OK || !strings.HasPrefix(c.Detail, "bpf-lsm: ") || !strings.Contains(c.Detail, "operation not permitted") ||
		!strings.HasSuffix(c.Detail, "could not be read)") || strings.Contains(c.Detail, "seccomp") {
		t.Fatalf("%+v", c)
	}
	if c := bpfLSMSelftestCheck("bpf-lsm", "bpf-lsm: self-test passed"); !c.OK {
		t.Fatalf("%+v", c)
	}
}
