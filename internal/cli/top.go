package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/coconut-os/coconut/api"
	"github.com/coconut-os/coconut/internal/top"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
)

// topView is `coconut top --json`: the agents the caller may see and the
// inference broker's counters, taken one after the other.
type topView struct {
	Agents    []api.Agent    `json:"agents"`
	Inference *api.Inference `json:"inference"`
}

func topCmd(g *globals) *cobra.Command {
	var watch time.Duration
	var once bool
	cmd := &cobra.Command{
		Use:   "top",
		Short: "Show running agents with their inference tokens, queues and budget waits",
		Long: "On a terminal: a live, interactive table of the agents you may see with active agents,\n" +
			"tokens and denies on top (? lists the keys: sort, / filter, enter for detail, k kill,\n" +
			"Q quarantine, q quit). --once prints one frame of it. When standard output is not a\n" +
			"terminal, or with --watch D: one plain snapshot (state, inference tokens in and out,\n" +
			"requests queued and in flight, Inference-blocked and why) and the broker's load,\n" +
			"redrawn every D with --watch. --json as one object.",
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if watch < 0 || (watch > 0 && watch < 100*time.Millisecond) {
				return usagef("--watch %s: use 100ms or more", watch)
			}
			// issue 13: the interactive top (internal/top).
			switch {
			case once && (g.json || watch > 0):
				return usagef("--once prints one frame: not with --json or --watch")
			case once:
				return top.Once(cmd.Context(), g.client(), os.Stdout, terminalWidth(os.Stdout))
			case !g.json && watch == 0 && isTerminal(os.Stdout) && isTerminal(os.Stdin):
				return top.Run(cmd.Context(), g.client())
			}
			for {
				v, err := snapshot(cmd.Context(), g)
				if err != nil {
					return err
				}
				if g.json {
					if err := printJSON(os.Stdout, v); err != nil {
						return err
					}
				} else {
					if watch > 0 {
						fmt.Print("\033[H\033[2J") // home and clear: a redraw, not a scroll
					}
					printTop(os.Stdout, v)
				}
				if watch == 0 {
					return nil
				}
				select {
				case <-cmd.Context().Done():
					return nil
				case <-time.After(watch):
				}
			}
		},
	}
	cmd.Flags().DurationVar(&watch, "watch", 0, "plain text redrawn every D (e.g. 1s) until interrupted")
	cmd.Flags().BoolVar(&once, "once", false, "print one frame of the interactive view and exit")
	return cmd
}

func snapshot(ctx context.Context, g *globals) (topView, error) {
	c := g.client()
	agents, err := c.Agents(ctx, false)
	if err != nil {
		return topView{}, err
	}
	inf, err := c.Inference(ctx)
	if err != nil {
		return topView{}, err
	}
	return topView{Agents: agents, Inference: inf}, nil
}

func printTop(w io.Writer, v topView) {
	in := v.Inference
	fmt.Fprintf(w, "inference: %s, %d/%d slots busy, %d queued, %d context tokens in flight, %d tokens in / %d out, %d Inference-blocked\n\n",
		in.Policy, in.InFlight, in.Slots, in.Queued, in.ContextUsed, in.TokensIn, in.TokensOut, len(in.Blocked))
	byAID := map[uint64]api.InferenceAgent{}
	for _, a := range in.Agents {
		byAID[a.AID] = a
	}
	tw := table(w)
	fmt.Fprintln(tw, "AID\tNAME\tSTATE\tTOK IN\tTOK OUT\tQUEUED\tIN FLIGHT\tWAITING FOR")
	for _, a := range v.Agents {
		i := byAID[a.AID]
		wait := "-"
		if i.Blocked {
			wait = i.Reason
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%d\t%d\t%d\t%s\n", a.AID, a.Name, a.State, i.TokensIn, i.TokensOut, i.Queued, i.InFlight, wait)
	}
	tw.Flush()
}

// terminalWidth is f's width in columns, or 160 when it is not a terminal.
func terminalWidth(f *os.File) int {
	if ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ); err == nil && ws.Col > 0 {
		return int(ws.Col)
	}
	return 160
}
