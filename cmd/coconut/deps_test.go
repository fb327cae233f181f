package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestCLIDoesNotLinkDaemon keeps the command-line binaries free of the
// daemon (issue 12): they talk to it over its socket and read the state
// directory's layout from internal/statedir, so nothing of internal/daemon
// (nor the agent manager or the server behind it) belongs in them; and
// coconut-tail links only what its one command uses.
func TestCLIDoesNotLinkDaemon(t *testing.T) {
	forbidden := []string{
		"github.com/coconut-os/coconut/internal/daemon",
		"github.com/coconut-os/coconut/internal/agent",
		"github.com/coconut-os/coconut/internal/server",
	}
	// coconut-tail is one command: it needs the client and internal/tail,
	// not the rest of the command line nor the benchmarks.
	tailOnly := []string{
		"github.com/coconut-os/coconut/internal/cli",
		"github.com/coconut-os/coconut/internal/bench",
	}
	for _, cmd := range []string{".", "../coconut-tail"} {
		out, err := exec.Command("go", "list", "-deps", cmd).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", cmd, err, out)
		}
		deps := map[string]bool{}
		for _, p := range strings.Fields(string(out)) {
			deps[p] = true
		}
		if !deps["github.com/coconut-os/coconut/client"] {
			t.Fatalf("go list -deps %s: no client package among %d deps; the listing is not what this test expects", cmd, len(deps))
		}
		not := forbidden
		if cmd != "." {
			not = append(not, tailOnly...)
		}
		for _, f := range not {
			if deps[f] {
				t.Errorf("%s links %s", cmd, f)
			}
		}
	}
}
