package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// agentPresent is agent_cap_present from the command line: mostly for
// scripts and tests; agents call it through libcoconut.
func agentPresent(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "present AID CAP [OBJECT]",
		Short: "Present an application capability (x.vendor.name, inference) for an operation; exit 1 if denied",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 2 || len(args) > 3 {
				return usagef("agent present: want AID CAP [OBJECT]")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			aid, err := parseAID(args[0])
			if err != nil {
				return err
			}
			object := ""
			if len(args) == 3 {
				object = args[2]
			}
			if err := g.client().AgentCapPresent(cmd.Context(), aid, args[1], object); err != nil {
				return err
			}
			if g.json {
				return printJSON(os.Stdout, map[string]any{"allowed": true, "cap": args[1]})
			}
			fmt.Println("allowed")
			return nil
		},
	}
}
