package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// barPoll is how often `coconut bar --watch` asks coconutd again. Token
// spend moves without an audit row, so the event stream alone would miss
// it: a poll sees both, and a line is printed only when it changed.
const barPoll = 2 * time.Second

// barTimeout bounds one look at coconutd: a status bar must never hang on a
// daemon that accepts the connection and then stalls.
const barTimeout = 1500 * time.Millisecond

// barState is what the bar shows: what the caller may see of coconutd.
type barState struct {
	Down      string // why coconutd could not be read ("" when it was)
	Agents    int    // agents the caller may see
	Active    int    // of them Active, Capability-denied or Inference-blocked
	TokensIn  int64  // inference tokens of those agents
	TokensOut int64
	Slots     int // the broker's slots and those busy, for the percentage
	InFlight  int
	Queued    int
}

// barActive is the states counted as active, as `coconut top` counts them.
func barActive(state string) bool {
	return state == "Active" || state == "Capability-denied" || state == "Inference-blocked"
}

// readBar asks coconutd, as the caller, for the agents and the broker's
// counters; the daemon answers only with what the caller may see.
func readBar(ctx context.Context, g *globals) barState {
	ctx, cancel := context.WithTimeout(ctx, barTimeout)
	defer cancel()
	c := g.client()
	agents, err := c.Agents(ctx, false)
	if err != nil {
		return barState{Down: oneLine(err)}
	}
	inf, err := c.Inference(ctx)
	if err != nil {
		return barState{Down: oneLine(err)}
	}
	s := barState{Agents: len(agents), Slots: inf.Slots, InFlight: inf.InFlight, Queued: inf.Queued}
	for _, a := range agents {
		if barActive(a.State) {
			s.Active++
		}
	}
	// The per-agent lines are the ones the caller may see: their sum is
	// the caller's spend, not the whole machine's (unless root).
	for _, a := range inf.Agents {
		s.TokensIn += a.TokensIn
		s.TokensOut += a.TokensOut
	}
	return s
}

// class is the waybar/CSS class: down, active (agents at work) or idle.
func (s barState) class() string {
	switch {
	case s.Down != "":
		return "down"
	case s.Active > 0:
		return "active"
	}
	return "idle"
}

// percentage is the broker's busy slots in percent (0 without a broker).
func (s barState) percentage() int {
	if s.Slots <= 0 {
		return 0
	}
	return min(100, s.InFlight*100/s.Slots)
}

func (s barState) text() string {
	if s.Down != "" {
		return "coconut down"
	}
	return fmt.Sprintf("coconut %d active · %s tok", s.Active, barCount(s.TokensIn+s.TokensOut))
}

func (s barState) tooltip() string {
	if s.Down != "" {
		return "coconutd unreachable: " + s.Down
	}
	return fmt.Sprintf("%d active of %d agents\ntokens %d in · %d out\nbroker %d/%d slots busy, %d queued",
		s.Active, s.Agents, s.TokensIn, s.TokensOut, s.InFlight, s.Slots, s.Queued)
}

// barCount is n in at most four characters: 987, 12.3k, 4.5M.
func barCount(n int64) string {
	switch {
	case n >= 1_000_000:
		return strconv.FormatFloat(float64(n)/1e6, 'f', 1, 64) + "M"
	case n >= 1_000:
		return strconv.FormatFloat(float64(n)/1e3, 'f', 1, 64) + "k"
	}
	return strconv.FormatInt(n, 10)
}

// barColor is the i3blocks/polybar colour of a class.
func barColor(class string) string {
	switch class {
	case "down":
		return "#e06c75"
	case "active":
		return "#98c379"
	}
	return "#abb2bf"
}

// barLine is s as one line in format: waybar's custom module JSON
// (return-type json), i3blocks' JSON (format=json) or a polybar
// custom/script line with a colour tag.
func barLine(format string, s barState) string {
	marshal := func(v any) string {
		b, _ := json.Marshal(v) // maps of strings and ints: cannot fail
		return string(b)
	}
	switch format {
	case "i3blocks":
		return marshal(map[string]any{
			"full_text":  s.text(),
			"short_text": strings.TrimPrefix(s.text(), "coconut "),
			"color":      barColor(s.class()),
			"urgent":     s.Down != "",
			"name":       "coconut",
			"instance":   s.class(),
		})
	case "polybar":
		// A polybar line is text with %{...} formatting tags; the text
		// holds only figures, never a name an agent chose, so no tag
		// can be smuggled in.
		return "%{F" + barColor(s.class()) + "}" + s.text() + "%{F-}"
	}
	return marshal(map[string]any{
		"text":       s.text(),
		"alt":        s.class(),
		"tooltip":    s.tooltip(),
		"class":      s.class(),
		"percentage": s.percentage(),
	})
}

var barFormats = []string{"waybar", "i3blocks", "polybar"}

func barCmd(g *globals) *cobra.Command {
	var format string
	var watch bool
	cmd := &cobra.Command{
		Use:   "bar",
		Short: "Print the status-bar line: active agents and token spend (waybar, i3blocks, polybar)",
		Long: "Prints one line for a status bar: the agents you may see that are active and the\n" +
			"inference tokens they spent, from coconutd as you. --format waybar (default: the JSON\n" +
			"of a custom module with return-type json: text, tooltip, class, percentage),\n" +
			"i3blocks (JSON, format=json) or polybar (a line with a colour tag). --watch keeps\n" +
			"running and prints a new line when the figures change (checked every 2s). When\n" +
			"coconutd cannot be reached the line says so with class \"down\", the reason goes to\n" +
			"standard error in one line, and the exit status stays 0: a bar shows it and tries again.",
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !validBarFormat(format) {
				return usagef("--format %q: use one of %s", format, strings.Join(barFormats, ", "))
			}
			return runBar(cmd.Context(), g, format, watch, os.Stdout, os.Stderr)
		},
	}
	cmd.Flags().StringVar(&format, "format", "waybar", "waybar, i3blocks or polybar")
	cmd.Flags().BoolVar(&watch, "watch", false, "keep running, print a line whenever the figures change")
	return cmd
}

func validBarFormat(f string) bool {
	for _, v := range barFormats {
		if f == v {
			return true
		}
	}
	return false
}

// runBar prints the line once, or with watch every time it changes until
// ctx ends. An error reading coconutd is a "down" line, never an exit: a
// write error (the bar went away) is.
func runBar(ctx context.Context, g *globals, format string, watch bool, out, errw io.Writer) error {
	last, lastDown := "", ""
	for {
		s := readBar(ctx, g)
		if ctx.Err() != nil {
			return nil
		}
		if s.Down != "" && s.Down != lastDown {
			fmt.Fprintln(errw, "coconut bar: coconutd unreachable:", s.Down)
		}
		lastDown = s.Down
		if line := barLine(format, s); line != last {
			if _, err := fmt.Fprintln(out, line); err != nil {
				return err
			}
			last = line
		}
		if !watch {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(barPoll):
		}
	}
}
