package cli

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/coconut-os/coconut/internal/notify"
)

// notifyCmd is `coconut notify` (issue 13): desktop notifications of the
// caller's agents' denies.
func notifyCmd(g *globals) *cobra.Command {
	var period time.Duration
	var statePath string
	cmd := &cobra.Command{
		Use:   "notify",
		Short: "Post a desktop notification when one of your agents is denied",
		Long: "Follows coconutd's event stream as you and posts each deny of your agents on the\n" +
			"session bus (org.freedesktop.Notifications) with the actions Review (opens the\n" +
			"Center's review page through a fresh login link) and Quarantine. An agent's first\n" +
			"deny is shown at once, later ones summarised at most once per --summary-every.\n" +
			"It reconnects when coconutd restarts and resumes after the last deny shown\n" +
			"(kept in $XDG_STATE_HOME/coconut/notify.json). Started by the XDG autostart\n" +
			"entry or the systemd user unit coconut-notify.service.",
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if period < 0 {
				return usagef("--summary-every %s: must be 0 (every deny) or more", period)
			}
			if statePath == "" {
				p, err := notify.StatePath()
				if err != nil {
					return err
				}
				statePath = p
			}
			if period == 0 {
				period = -1 // Options: negative shows every deny
			}
			home, _ := os.UserHomeDir()
			c := g.client()
			err := notify.Run(cmd.Context(), notify.Options{Client: c, Socket: c.SocketPath(), StatePath: statePath,
				Period: period, Home: home, Log: os.Stderr})
			if errors.Is(err, notify.ErrRunning) {
				fmt.Fprintln(os.Stderr, "coconut notify:", err)
				return nil // the autostart entry and the user unit both start it
			}
			return err
		},
	}
	cmd.Flags().DurationVar(&period, "summary-every", notify.DefaultPeriod, "summarise one agent's later denies at most this often (0: show every deny)")
	cmd.Flags().StringVar(&statePath, "state", "", "where to keep the last deny shown (default $XDG_STATE_HOME/coconut/notify.json)")
	return cmd
}
