package netguard_test

import (
	"os"
	"testing"

	"github.com/coconut-os/coconut/internal/netguard"
	"github.com/coconut-os/coconut/internal/testutil/leakcheck"
)

// TestMain runs a re-executed helper, or the tests under a check that
// they leave no pin, cgroup or process behind (in the external test
// package: leakcheck imports netguard).
func TestMain(m *testing.M) {
	if code, ok := netguard.HelperMain(); ok {
		os.Exit(code)
	}
	os.Exit(leakcheck.Main(m))
}
