package tail

import (
	"github.com/spf13/cobra"

	"github.com/coconut-os/coconut/client"
	"github.com/coconut-os/coconut/internal/usage"
)

// Main is coconut-tail: `coconut audit tail -f ARGS...` with only the
// commands it needs. The root takes the same persistent flags as
// internal/cli's (main_test.go checks they match), so every invocation
// that worked when coconut-tail ran the whole command line still does.
func Main(args []string) int {
	return usage.Execute(Root(), append([]string{"audit", "tail", "-f"}, args...))
}

// Root is coconut-tail's command tree: the root with the command line's
// persistent flags and `audit tail` under it.
func Root() *cobra.Command {
	var socket, stateDir string
	var asJSON bool
	root := &cobra.Command{Use: "coconut", SilenceUsage: true, SilenceErrors: true}
	root.PersistentFlags().StringVar(&socket, "socket", "", "coconutd socket (default $COCONUT_SOCKET or "+client.DefaultSocket+")")
	root.PersistentFlags().StringVar(&stateDir, "state-dir", "", "coconutd state dir, for offline checks (default $COCONUT_STATE_DIR or /var/lib/coconut)")
	root.PersistentFlags().BoolVar(&asJSON, "json", false, "print JSON")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usage.Error{Err: err} })
	audit := &cobra.Command{Use: "audit", Short: "Read and verify the audit chain"}
	audit.AddCommand(Command(&socket, &asJSON))
	root.AddCommand(audit)
	return root
}
