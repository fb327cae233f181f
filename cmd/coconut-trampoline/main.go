// Command coconut-trampoline is the small program coconutd starts each
// agent through (see internal/launch): it is cloned into the agent's cgroup,
// drops privileges and execs the measured program. It is a separate, small
// binary because it starts once per agent: a 2 MB program reaches main
// several times faster than the 16 MB daemon would. coconutd falls back to
// re-executing itself when this binary is not installed beside it.
package main

import (
	"fmt"
	"os"

	"github.com/coconut-os/coconut/internal/launch"
)

func main() {
	launch.Main() // never returns when started by coconutd
	fmt.Fprintln(os.Stderr, "coconut-trampoline: only coconutd runs this")
	os.Exit(2)
}
