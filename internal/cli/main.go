// Package cli is the coconut command line (docs/cli.md is its contract)
// of cmd/coconut (coconut-tail runs internal/tail). Exit status: 0 success, 1
// refused or failed (one line on stderr), 2 bad usage.
package cli

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/coconut-os/coconut/client"
	"github.com/coconut-os/coconut/internal/bench"
	"github.com/coconut-os/coconut/internal/statedir"
	"github.com/coconut-os/coconut/internal/usage"
)

// usageError marks bad usage: exit status 2 (internal/usage, shared with
// the commands mounted from internal/bench).
type usageError = usage.Error

func usagef(format string, args ...any) error { return usage.Errorf(format, args...) }

// globals are the flags every command takes.
type globals struct {
	socket   string
	stateDir string
	json     bool
}

func (g *globals) client() *client.Client { return client.New(g.socket) }

// Run executes the command line args and returns the exit status.
func Run(args []string) int {
	g := &globals{}
	return usage.Execute(newRoot(g), args)
}

func newRoot(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:           "coconut",
		Short:         "Coconut: AI agents as first-class principals of a Linux machine",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.socket, "socket", "", "coconutd socket (default $COCONUT_SOCKET or "+client.DefaultSocket+")")
	root.PersistentFlags().StringVar(&g.stateDir, "state-dir", "", "coconutd state dir, for offline checks (default $COCONUT_STATE_DIR or /var/lib/coconut)")
	root.PersistentFlags().BoolVar(&g.json, "json", false, "print JSON")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usage.Error{Err: err} })
	root.AddCommand(
		keyCmd(g), trustCmd(g), manifestCmd(g), agentCmd(g), auditCmd(g), doctorCmd(g), bench.Command(&g.socket, &g.json), topCmd(g), initCmd(g),
		notifyCmd(g), // issue 13
		barCmd(g),    // issue 16: the status-bar line
		centerCmd(g),
	)
	return root
}

func (g *globals) state() string {
	if g.stateDir != "" {
		return g.stateDir
	}
	if s := os.Getenv("COCONUT_STATE_DIR"); s != "" {
		return s
	}
	return statedir.Default
}

// exactArgs is cobra.ExactArgs with exit status 2.
func exactArgs(n int) cobra.PositionalArgs { return usage.ExactArgs(n) }

func minArgs(n int) cobra.PositionalArgs { return usage.MinArgs(n) }
