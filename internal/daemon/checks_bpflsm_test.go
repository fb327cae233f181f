package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coconut-os/coconut/internal/bpflsm"
	"github.com/coconut-os/coconut/internal/cgroup"
	"github.com/coconut-os/coconut/internal/enforce"
	"github.com/coconut-os/coconut/internal/testutil"
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

// TestBPFLSMSelftestCheckHere is the check on the reason auto really gives
// on this kernel: where BPF LSM programs do not fire (this project's hosts
// refuse trampolines) auto is portable and the check fails naming the
// self-test's refusal and how to enable it; where they fire (the VM
// guests) the check passes.
func TestBPFLSMSelftestCheckHere(t *testing.T) {
	testutil.RequireRoot(t, "to load BPF programs")
	mount, err := cgroup.UnifiedMount()
	if err != nil {
		t.Skipf("no cgroup2 hierarchy: %v", err)
	}
	root := filepath.Join(mount, "coconut-daemon-selftest-lsm")
	os.Remove(root)
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { enforce.Uninstall(root); os.Remove(root) })
	e, why, err := enforce.Choose("auto", enforce.Config{CgroupRoot: root})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	c := bpfLSMSelftestCheck(e.Name(), why)
	t.Logf("auto: %s; check: %+v", e.Name(), c)
	if probe := bpflsm.Probe(root); probe == nil {
		if e.Name() != "bpf-lsm" || !c.OK {
			t.Fatalf("the self-test fires here, but auto is %s: %+v", e.Name(), c)
		}
		return
	}
	if e.Name() != "portable" || c.OK || !strings.HasPrefix(c.Detail, "bpf-lsm: ") || !strings.Contains(c.Detail, "lsm=") {
		t.Fatalf("auto where BPF LSM programs do not fire: %s, check %+v", e.Name(), c)
	}
}
