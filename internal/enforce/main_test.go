package enforce

import (
	"os"
	"testing"

	"github.com/coconut-os/coconut/internal/launch"
	"github.com/coconut-os/coconut/internal/testutil/leakcheck"
)

// TestMain fails the package if its tests leave a cgroup, pin or process
// behind. launch.Main first: the spawn test runs this binary as the
// trampoline.
func TestMain(m *testing.M) {
	launch.Main()
	os.Exit(leakcheck.Main(m))
}
