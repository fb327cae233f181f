package cli

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/coconut-os/coconut/internal/orphan"
)

// findOrphans looks for orphans. A failure yields none and is said on
// stderr (the JSON on stdout stays whole) and in the text report.
func findOrphans() ([]orphan.Orphan, error) {
	loc, err := orphan.DefaultLocations()
	var found []orphan.Orphan
	if err == nil {
		found, err = orphan.Find(loc)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "coconut: doctor: looking for orphans:", oneLine(err))
		return []orphan.Orphan{}, err
	}
	return found, nil
}

func printOrphans(w io.Writer, found []orphan.Orphan, err error) {
	if err != nil {
		fmt.Fprintf(w, "orphans:     unknown: %s\n", oneLine(err))
		return
	}
	if len(found) == 0 {
		fmt.Fprintln(w, "orphans:     none")
		return
	}
	fmt.Fprintf(w, "orphans:     %d (daemon gone; `coconutd --reap-orphans` removes the reapable ones)\n", len(found))
	for _, o := range found {
		owner := "no owner record: made by an older coconutd or a test"
		switch o.Reason {
		case orphan.ReasonStateDirGone:
			owner = fmt.Sprintf("daemon pid %d gone, state dir %s removed", o.OwnerPID, o.StateDir)
		case orphan.ReasonDaemonStopped:
			owner = fmt.Sprintf("daemon pid %d gone, state dir %s exists: start coconutd on it, or coconutd --uninstall --kill-agents --state-dir %s", o.OwnerPID, o.StateDir, o.StateDir)
		}
		mark := ""
		if o.Reapable {
			mark = " [reapable]"
		}
		fmt.Fprintf(w, "  %s%s: %s\n", o.Name, mark, owner)
		for _, c := range o.Cgroups {
			fmt.Fprintf(w, "      cgroup %s\n", c)
		}
		if len(o.V1Cgroups) > 0 {
			fmt.Fprintf(w, "      v1 groups %s\n", strings.Join(o.V1Cgroups, " "))
		}
		if o.Pins != "" {
			fmt.Fprintf(w, "      pins %s: %d programs attached\n", o.Pins, len(o.Programs))
		}
		alive := 0
		for _, a := range o.Agents {
			alive += len(a.PIDs)
		}
		if len(o.Agents) > 0 {
			fmt.Fprintf(w, "      %d agent cgroups, %d processes alive\n", len(o.Agents), alive)
		}
		if len(o.HeldBy) > 0 {
			fmt.Fprintf(w, "      guard held open by pids %v\n", o.HeldBy)
		}
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(w, "             (not root: pinned programs and their holders are not visible)")
	}
}
