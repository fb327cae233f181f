package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func doctorCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "doctor", Short: "Say what coconutd and this kernel can do", Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			d, err := g.client().Doctor(cmd.Context())
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(os.Stdout, d)
			}
			fmt.Printf("coconutd %s (pid %d), state %s\n", d.Version, d.PID, d.StateDir)
			fmt.Printf("enforcer:    %s — %s\n", d.Enforcer, d.EnforcerWhy)
			fmt.Printf("ECAPABILITY: errno %d\n", d.ECapability)
			fmt.Printf("anchor:      %s\n", d.Anchor)
			fmt.Printf("host key:    %s\n", d.HostKeyID)
			fmt.Printf("audit chain: %d records\n", d.ChainHead)
			fmt.Printf("agents:      %d running\n", d.Agents)
			printCounters(d) // doctor_counters.go
			fmt.Println("             (supervisor and network guard denies; Landlock floor denials are only in the kernel audit log: see kernel-audit)")
			for _, c := range d.Checks {
				mark := "ok  "
				if !c.OK {
					mark = "NO  "
				}
				fmt.Printf("  %s %-12s %s\n", mark, c.Name, c.Detail)
			}
			return nil
		},
	}
}
