package cli

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/coconut-os/coconut/client"
	"github.com/coconut-os/coconut/internal/config"
	"github.com/coconut-os/coconut/internal/setup"
)

// initCmd is `coconut init`: five questions (or flags with --yes), then
// the configuration, keys, trust, anchor, project directories and a
// running coconutd. internal/setup does the work.
func initCmd(g *globals) *cobra.Command {
	var yes, reconfigure, noStart bool
	var cfgPath, example, coconutd, tpmSocket string
	flagVals := map[string]*string{}
	cmd := &cobra.Command{
		Use:   "init [--yes] [--profile workstation|server] [--user NAME] [--backend sim|URL] [--anchor tpm|fss] [--notifications on|off]",
		Short: "Set Coconut up on this machine: five questions, then config, keys, trust and a running coconutd",
		Long: `init asks five questions, each with a default (Enter takes it), or takes them
as flags (--yes: the defaults for the rest, no questions). It writes a
commented configuration file, makes the host key and the workstation user's
signing key (~/.config/coconut/USER.key, 0600), trusts that key for the
user's spawns, anchors the audit chain (TPM NV index, or forward-secure
seals whose verification seed it shows once), prepares the dream team's
project directories and a signed copy of its manifest, and starts coconutd.
Run again, it changes nothing unless asked (--reconfigure) and says what it
would change.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if os.Geteuid() != 0 {
				return fmt.Errorf("init: run as root (sudo coconut init): it writes %s and starts coconutd", cfgPath)
			}
			var old *config.Config
			if config.Exists(cfgPath) {
				c, err := config.Load(cfgPath, true)
				if err != nil {
					return fmt.Errorf("%w (fix or move it away, then run init again)", err)
				}
				old = &c
			}
			a := setup.Defaults(old)
			if cmd.Flags().Changed("tpm-socket") {
				a.TPMSocket = tpmSocket
			}
			fixed := map[string]bool{}
			for key, v := range flagVals {
				if cmd.Flags().Changed(key) {
					if key == "backend-key-file" {
						a.KeyFile = *v
					} else if err := a.Set(key, *v); err != nil {
						return usagef("--%s: %v", key, err)
					}
					fixed[key] = true
				}
			}
			if !yes {
				fmt.Fprintln(os.Stderr, "coconut init: five questions; Enter takes the default in brackets.")
				if err := a.Ask(cmd.InOrStdin(), os.Stderr, fixed); err != nil {
					return err
				}
			}
			if err := a.Finish(); err != nil {
				return usagef("%v", err)
			}
			if example == "" {
				var err error
				if example, err = findExample(); err != nil {
					return err
				}
			}
			sock := g.socket
			if sock == "" {
				sock = os.Getenv("COCONUT_SOCKET")
			}
			paths := setup.Paths{StateDir: g.stateDir, Socket: sock}
			resolvedSock := sock
			if resolvedSock == "" {
				resolvedSock = client.DefaultSocket
			}
			abs, err := filepath.Abs(cfgPath)
			if err != nil {
				return err
			}
			r, err := setup.Run(cmd.Context(), setup.Options{Answers: a, Config: abs, Paths: paths, StateDir: g.state(), Socket: resolvedSock,
				Example: example, Coconutd: coconutd, Reconfigure: reconfigure, NoStart: noStart})
			if g.json && r != nil {
				if perr := printJSON(os.Stdout, r); perr != nil {
					return perr
				}
			} else if r != nil {
				printInit(r)
			}
			return err
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&yes, "yes", "y", false, "ask nothing: the defaults (or the existing configuration's answers) for every question not given as a flag")
	for _, q := range []struct{ key, usage string }{
		{"profile", "workstation or server"},
		{"user", "the workstation user (default $SUDO_USER, else " + setup.DemoUser + ")"},
		{"backend", "sim, or an OpenAI-compatible base URL (checked with GET /models)"},
		{"backend-key-file", "a file holding the backend's API key"},
		{"anchor", "tpm (when /dev/tpmrm0 exists) or fss"},
		{"notifications", "on or off"},
	} {
		v := new(string)
		flagVals[q.key] = v
		f.StringVar(v, q.key, "", q.usage)
	}
	f.StringVar(&tpmSocket, "tpm-socket", "", "an swtpm data socket for the audit anchor instead of /dev/tpmrm0 (written to the configuration)")
	f.StringVar(&cfgPath, "config", config.DefaultPath, "configuration file to write")
	f.BoolVar(&reconfigure, "reconfigure", false, "apply answers that change the existing configuration (and restart coconutd)")
	f.BoolVar(&noStart, "no-start", false, "do not start coconutd")
	f.StringVar(&example, "example", "", "the dream team's manifest to sign for the user (default: the installed example)")
	f.StringVar(&coconutd, "coconutd", "", "the coconutd binary to start (default: beside coconut, else $PATH)")
	return cmd
}

// findExample finds the shipped dream-team manifest: in the share
// directory of the prefix this binary runs from (/usr or /usr/local),
// then in either.
func findExample() (string, error) {
	rel := "share/coconut/examples/dream-team/dream-team.yaml"
	var dirs []string
	if self, err := os.Executable(); err == nil {
		dirs = append(dirs, filepath.Join(filepath.Dir(self), ".."))
	}
	dirs = append(dirs, "/usr", "/usr/local")
	for _, d := range dirs {
		p := filepath.Join(d, rel)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("init: no %s under %v (install the package or run make install; or give --example FILE)", rel, dirs)
}

func printInit(r *setup.Report) {
	tw := table(os.Stdout)
	for _, s := range r.Steps {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", s.Status, s.Name, s.Detail)
	}
	tw.Flush()
	if r.FSSSeed != "" {
		fmt.Printf("\nAudit chain verification seed (shown once; keep it off this host, then delete the copy in the state dir's keys/fss.seed):\n\n    %s\n\nVerify the chain with: coconut audit verify --seal-key SEED\n", r.FSSSeed)
	}
	if r.Pending {
		fmt.Println("\nWhat is marked \"would change\" differs from what init makes and was left as it is: run again with --reconfigure to apply it.")
		return
	}
	fmt.Println("\nNext:")
	for _, n := range r.Next {
		fmt.Println("  " + n)
	}
}
