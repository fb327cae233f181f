package cli

import (
	"fmt"
	"strings"

	"github.com/coconut-os/coconut/api"
)

// printQuotaDefaults is doctor's line for [quota.defaults] (issue 19): the
// budget of every agent that sets none itself.
func printQuotaDefaults(d *api.QuotaDefaults) {
	if d == nil {
		return // an older daemon
	}
	pids, mem := "max (none)", "max (none)"
	if d.Pids > 0 {
		pids = fmt.Sprint(d.Pids)
	}
	if d.MemoryMax > 0 {
		mem = fmtSize(d.MemoryMax)
		if strings.HasSuffix(d.Memory, "%") {
			mem += " (" + d.Memory + " of RAM)"
		}
	}
	fmt.Printf("defaults:    pids %s, memory %s, cpu weight %d per agent", pids, mem, d.CPUWeight)
	if !d.Enforced {
		fmt.Printf(" — NOT APPLIED: %s", d.Why)
	}
	fmt.Println()
}

// printDenyStorm is doctor's line for on_deny_storm (issue 19): what is
// done to an agent whose denies pass a rate, unless its own policy says.
func printDenyStorm(p string) {
	if p != "" {
		fmt.Printf("deny storm:  %s (on_deny_storm for agents that name none)\n", p)
	}
}
