package testutil

import (
	"os"
	"testing"
)

// TestKernelRelease: the running kernel's release parses, and
// RequireKernel does not skip for the kernel it runs on.
func TestKernelRelease(t *testing.T) {
	v, err := KernelRelease()
	if err != nil || v[0] < 3 {
		t.Fatalf("release %v, %v", v, err)
	}
	ok := t.Run("current", func(t *testing.T) { RequireKernel(t, v[0], v[1], "this kernel") })
	if !ok {
		t.Fatal("RequireKernel failed for the running kernel")
	}
}

// TestRequireRootHere: on this project's machines the tests run as root,
// and RequireRoot lets them run.
func TestRequireRootHere(t *testing.T) {
	ran := false
	t.Run("root", func(t *testing.T) { RequireRoot(t, "the check itself"); ran = true })
	if os.Geteuid() == 0 && !ran {
		t.Error("RequireRoot skipped as root")
	}
}
