package bench

import (
	"os"
	"testing"

	"github.com/coconut-os/coconut/internal/testutil/leakcheck"
)

// TestMain fails the package if its tests leave a cgroup, pin or process
// behind.
func TestMain(m *testing.M) { os.Exit(leakcheck.Main(m)) }
