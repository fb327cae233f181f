package tail

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/coconut-os/coconut/api"
	"github.com/coconut-os/coconut/client"
	"github.com/coconut-os/coconut/internal/usage"
)

// Flags are the filters of `audit tail` and `audit query`.
type Flags struct {
	aid                            uint64
	since, until, typ, cap, result string
}

// Add registers the filters on cmd; full adds those only query takes.
func (f *Flags) Add(cmd *cobra.Command, full bool) {
	cmd.Flags().Uint64Var(&f.aid, "aid", 0, "only this agent")
	cmd.Flags().StringVar(&f.typ, "type", "", "only this event type (a trailing * matches a prefix: agent.*)")
	if full {
		cmd.Flags().StringVar(&f.since, "since", "", "from this time (RFC 3339, or a duration ago: 15m)")
		cmd.Flags().StringVar(&f.until, "until", "", "before this time")
		cmd.Flags().StringVar(&f.cap, "cap", "", "only rows about this capability")
		cmd.Flags().StringVar(&f.result, "result", "", "allow or deny")
	}
}

// Query is the audit query the filters ask for.
func (f *Flags) Query() client.AuditQuery {
	q := client.AuditQuery{Since: f.since, Until: f.until, Type: f.typ, Cap: f.cap, Result: f.result}
	if f.aid != 0 {
		aid := f.aid
		q.AID = &aid
	}
	return q
}

// tailLines is what `audit tail` prints without -f.
const tailLines = 20

// run is `coconut audit tail` and `coconut-tail`.
func run(ctx context.Context, c *client.Client, f *Flags, follow, asJSON bool) error {
	if follow && !asJSON {
		return view(ctx, c, f, NewPrinter(os.Stdout, false)) // issue 13: coconut-tail's view
	}
	q := f.Query()
	// Without -f: the last rows. Find them by paging forward; the chain is
	// the authority and has no reverse index yet.
	var last []api.Record
	for {
		q.Limit = 1000
		page, err := c.AgentAuditQuery(ctx, q)
		if err != nil {
			return err
		}
		last = append(last, page.Records...)
		if len(last) > tailLines {
			last = last[len(last)-tailLines:]
		}
		if page.Next == 0 {
			break
		}
		q.AfterSeq = page.Next
	}
	pr := NewPrinter(os.Stdout, asJSON)
	var after uint64
	for _, r := range last {
		pr.Print(r)
		after = r.Seq
	}
	if len(last) == 0 {
		after = q.AfterSeq
	}
	if !follow {
		return nil
	}
	// issue 13: the daemon's event stream, the one every live view reads.
	st, err := c.Events(ctx, after, f.eventFilter())
	if err != nil {
		return err
	}
	defer st.Close()
	for st.Next() {
		pr.Print(st.Record())
	}
	return st.Err()
}

// eventFilter is the part of the flags the event stream filters on.
func (f *Flags) eventFilter() client.EventFilter {
	ef := client.EventFilter{Type: f.typ, Result: f.result}
	if f.aid != 0 {
		aid := f.aid
		ef.AID = &aid
	}
	return ef
}

// Command is `audit tail`, mounted by internal/cli and by Main. socket
// and asJSON are the root command's --socket and --json.
func Command(socket *string, asJSON *bool) *cobra.Command {
	var f Flags
	var follow bool
	cmd := &cobra.Command{
		Use: "tail [-f] [--aid AID] [--type TYPE]", Short: "Print the latest audit rows; -f follows new ones", Args: usage.ExactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return run(cmd.Context(), client.New(*socket), &f, follow, *asJSON)
		},
	}
	f.Add(cmd, false)
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new rows")
	return cmd
}

// Printer writes rows: JSON lines, or one readable (coloured on a
// terminal) line per row.
type Printer struct {
	w     io.Writer
	json  bool
	color bool
	enc   *json.Encoder
}

// NewPrinter prints to f, JSON lines when asJSON.
func NewPrinter(f *os.File, asJSON bool) *Printer {
	return &Printer{w: f, json: asJSON, color: isTerminal(f) && os.Getenv("NO_COLOR") == "", enc: json.NewEncoder(f)}
}

// Print writes one row.
func (p *Printer) Print(r api.Record) {
	if p.json {
		p.enc.Encode(r)
		return
	}
	res := r.Result
	if res == "" {
		res = "-"
	}
	if p.color {
		switch r.Result {
		case "deny":
			res = "\x1b[31m" + res + "\x1b[0m"
		case "allow":
			res = "\x1b[32m" + res + "\x1b[0m"
		}
	}
	var extra []string
	keys := make([]string, 0, len(r.Detail))
	for k := range r.Detail {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		extra = append(extra, k+"="+r.Detail[k])
	}
	if r.Cap != "" {
		extra = append([]string{"cap=" + r.Cap}, extra...)
	}
	if r.Errno != 0 {
		extra = append(extra, fmt.Sprintf("errno=%d", r.Errno))
	}
	fmt.Fprintf(p.w, "%6d %s aid=%-4d %-14s %-5s %s %s\n", r.Seq, r.Time.Local().Format("15:04:05.000"), r.AID, r.Type, res, r.Object, strings.Join(extra, " "))
}

// isTerminal reports whether f is a terminal (for colour).
func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
