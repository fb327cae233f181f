package cli

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
)

// agentPrune is `coconut agent prune` (issue 17): ended agents' registry
// records, attestations and logs removed; the audit chain keeps every row.
func agentPrune(g *globals) *cobra.Command {
	var before string
	cmd := &cobra.Command{
		Use: "prune --ended-before DATE", Short: "Forget agents that ended before DATE: their record, attestation and log (never the audit chain)", Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if before == "" {
				return usagef("--ended-before DATE is needed")
			}
			t, err := parseBefore(before, time.Now())
			if err != nil {
				return usagef("--ended-before %q: %v", before, err)
			}
			res, err := g.client().AgentPrune(cmd.Context(), t)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(os.Stdout, res)
			}
			fmt.Printf("pruned %d ended agents (%d bytes); %d ended later kept; the audit chain keeps every row about them\n", len(res.Pruned), res.Bytes, res.Kept)
			return nil
		},
	}
	cmd.Flags().StringVar(&before, "ended-before", "", "agents that ended before this: YYYY-MM-DD (UTC), RFC 3339, or an age (30d, 12h)")
	return cmd
}
