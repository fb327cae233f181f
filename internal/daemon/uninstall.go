package daemon

import (
	"errors"
	"fmt"
	"os"

	"github.com/coconut-os/coconut/internal/cgroup"
	"github.com/coconut-os/coconut/internal/enforce"
)

// ErrAgentsRunning: uninstall refused while agents of the subtree run.
var ErrAgentsRunning = errors.New("agents are still running")

// Uninstall is the clean uninstall path (coconutd --uninstall): it removes
// what a daemon for stateDir leaves in the kernel on purpose so that its
// agents stay guarded while it is down — the network guard pinned in
// bpffs — and the empty cgroup subtree. It refuses while any agent cgroup
// remains (stop or kill them first): they would lose network enforcement.
// A daemon stopped with SIGTERM keeps all of it.
func Uninstall(stateDir string) error {
	tree, err := cgroup.OpenTree(cgroup.SubtreeName(stateDir))
	if err != nil {
		return err
	}
	aids, err := tree.List()
	if err != nil {
		return err
	}
	if len(aids) > 0 {
		return fmt.Errorf("uninstall: %w (%d agent cgroups under %s): kill them first", ErrAgentsRunning, len(aids), tree.Root)
	}
	if err := enforce.Uninstall(tree.Root); err != nil {
		return fmt.Errorf("uninstall: %w", err)
	}
	if err := tree.Remove(); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("uninstall: remove cgroup subtree: %w", err)
	}
	return nil
}
