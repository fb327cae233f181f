package enforce

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coconut-os/coconut/internal/bpflsm"
)

// testCgroupRoot makes a coconut-like subtree in the unified hierarchy.
func testCgroupRoot(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	mount := ""
	for _, m := range []string{"/sys/fs/cgroup/unified", "/sys/fs/cgroup"} {
		if _, err := os.Stat(filepath.Join(m, "cgroup.procs")); err == nil {
			if _, err := os.Stat(filepath.Join(m, "cgroup.subtree_control")); err == nil {
				mount = m
				break
			}
		}
	}
	if mount == "" {
		t.Skip("no cgroup2 hierarchy")
	}
	dir := filepath.Join(mount, "coconut-enforce-bpflsm-test")
	os.Remove(dir)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { Uninstall(dir); os.Remove(dir) })
	return dir
}

// TestChooseBPFLSMHere: on a kernel where BPF LSM programs do not fire
// (this project's hosts refuse trampolines with EPERM) --enforcer bpf-lsm
// is an error naming the reason and how to enable it, and auto falls back
// to portable saying why; where they fire (the VM), bpf-lsm is chosen.
func TestChooseBPFLSMHere(t *testing.T) {
	root := testCgroupRoot(t)
	probe := bpflsm.Probe(root)
	e, why, err := Choose("bpf-lsm", Config{CgroupRoot: root})
	if probe == nil {
		if err != nil {
			t.Fatalf("the probe passed but bpf-lsm did not load: %v", err)
		}
		defer e.Close()
		if e.Name() != "bpf-lsm" {
			t.Fatalf("backend %s", e.Name())
		}
		return
	}
	if err == nil {
		e.Close()
		t.Fatalf("bpf-lsm loaded although the probe failed (%v): %s", probe, why)
	}
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "lsm=") {
		t.Fatalf("bpf-lsm refusal: %v (want ErrUnavailable naming lsm=)", err)
	}
	t.Logf("--enforcer bpf-lsm: %v", err)
	e, why, err = Choose("auto", Config{CgroupRoot: root})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if e.Name() != "portable" || !strings.Contains(why, "bpf-lsm: ") || !strings.Contains(why, "lsm=") {
		t.Fatalf("auto: %s: %s", e.Name(), why)
	}
	t.Logf("--enforcer auto: %s", why)
}
