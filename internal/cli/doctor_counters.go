package cli

import (
	"fmt"
	"time"

	"github.com/coconut-os/coconut/api"
)

// sourceNames says what each counter source is, for the alarm line.
var sourceNames = map[string]string{"supervisor": "seccomp supervisor", "netguard": "network guard"}

// printCounters prints doctor's counters line and, when kernel denies and
// audit chain rows differ now or ever did on this host (issue 20), one
// alarm line per source: by how much, since when, which source, so a user
// can report it. The daemon keeps the alarm across restarts.
func printCounters(d *api.Doctor) {
	c := d.Counters
	fmt.Printf("counters:    kernel_denies=%d chain_denies=%d ringbuf_full=%d (supervisor %d/%d, network guard %d/%d)\n",
		c["kernel_denies"], c["chain_denies"], c["ringbuf_full"],
		c["kernel_denies_supervisor"], c["chain_denies_supervisor"], c["kernel_denies_netguard"], c["chain_denies_netguard"])
	if c["counters_settled"] == 0 && c["kernel_denies"] != c["chain_denies"] {
		fmt.Printf("             (denies in flight: %d kernel denies, %d chain rows so far; run doctor again)\n", c["kernel_denies"], c["chain_denies"])
	}
	for _, a := range d.CountersAlarm {
		name := sourceNames[a.Source]
		if name == "" {
			name = a.Source
		}
		when := "differed"
		if a.Now {
			when = "DIFFER NOW"
		}
		fmt.Printf("  ALARM      kernel denies and audit chain rows %s: %s (%s) off by %+d (largest %+d; kernel %d, chain %d),\n"+
			"             first seen %s, last seen %s by coconutd pid %d. Off-by-N is a release blocker: please report it with this output.\n",
			when, name, a.Source, a.Difference, a.MaxDifference, a.KernelDenies, a.ChainDenies,
			a.FirstSeen.Local().Format(time.RFC3339), a.LastSeen.Local().Format(time.RFC3339), a.DaemonPID)
	}
}
