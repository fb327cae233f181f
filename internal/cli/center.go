package cli

import (
	"fmt"
	"os"
	"os/exec"

	"github.com/spf13/cobra"
)

// centerCmd is `coconut center`: a login link to the Center for the
// calling user, printed and, when a desktop session is there, opened.
func centerCmd(g *globals) *cobra.Command {
	var next string
	var noOpen bool
	cmd := &cobra.Command{
		Use:   "center [--next PATH] [--no-open]",
		Short: "Open Coconut Center: print a single-use login link (60 s) and open it in the browser",
		Long: "Asks coconutd over its socket for a login link for you (the daemon knows who you are from the\n" +
			"socket), prints it and opens it with xdg-open when a display is there ($DISPLAY or\n" +
			"$WAYLAND_DISPLAY). The link works once, within 60 seconds. --next /review/SEQ lands on a\n" +
			"page (/, /agents/AID, /audit, /plots, /review/SEQ). coconutd serves the Center when started\n" +
			"with --center-addr 127.0.0.1:PORT or [center] addr in coconut.toml.",
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := g.client().CenterLogin(cmd.Context(), next)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(os.Stdout, l)
			}
			fmt.Println(l.URL)
			if noOpen || (os.Getenv("DISPLAY") == "" && os.Getenv("WAYLAND_DISPLAY") == "") {
				fmt.Fprintf(os.Stderr, "open it in your browser within %d seconds; it works once\n", l.ExpiresIn)
				return nil
			}
			opener, err := exec.LookPath("xdg-open")
			if err != nil {
				fmt.Fprintf(os.Stderr, "no xdg-open: open the link in your browser within %d seconds\n", l.ExpiresIn)
				return nil
			}
			c := exec.Command(opener, l.URL)
			c.Stdout, c.Stderr = nil, nil
			if err := c.Start(); err != nil {
				fmt.Fprintf(os.Stderr, "xdg-open: %v: open the link yourself\n", err)
				return nil
			}
			go c.Wait()
			return nil
		},
	}
	cmd.Flags().StringVar(&next, "next", "", "Center `page` to land on (e.g. /review/SEQ)")
	cmd.Flags().BoolVar(&noOpen, "no-open", false, "only print the link")
	return cmd
}
