package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/coconut-os/coconut/api"
	"github.com/coconut-os/coconut/client"
	"github.com/coconut-os/coconut/internal/audit"
	"github.com/coconut-os/coconut/internal/daemon"
)

func auditCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Read and verify the audit chain"}
	cmd.AddCommand(auditTail(g), auditQuery(g), auditVerify(g), notYet("prove", "inclusion proofs (coconut audit prove) need the Merkle checkpoints, not built yet"))
	return cmd
}

type queryFlags struct {
	aid                            uint64
	since, until, typ, cap, result string
}

func (f *queryFlags) add(cmd *cobra.Command, full bool) {
	cmd.Flags().Uint64Var(&f.aid, "aid", 0, "only this agent")
	cmd.Flags().StringVar(&f.typ, "type", "", "only this event type (a trailing * matches a prefix: agent.*)")
	if full {
		cmd.Flags().StringVar(&f.since, "since", "", "from this time (RFC 3339, or a duration ago: 15m)")
		cmd.Flags().StringVar(&f.until, "until", "", "before this time")
		cmd.Flags().StringVar(&f.cap, "cap", "", "only rows about this capability")
		cmd.Flags().StringVar(&f.result, "result", "", "allow or deny")
	}
}

func (f *queryFlags) query() client.AuditQuery {
	q := client.AuditQuery{Since: f.since, Until: f.until, Type: f.typ, Cap: f.cap, Result: f.result}
	if f.aid != 0 {
		aid := f.aid
		q.AID = &aid
	}
	return q
}

// TailLines is what `audit tail` prints without -f.
const tailLines = 20

// RunTail is `coconut audit tail` and `coconut-tail`.
func runTail(cmd *cobra.Command, g *globals, f *queryFlags, follow bool) error {
	c := g.client()
	q := f.query()
	// Without -f: the last rows. Find them by paging forward; the chain is
	// the authority and has no reverse index yet.
	var last []api.Record
	for {
		q.Limit = 1000
		page, err := c.AgentAuditQuery(cmd.Context(), q)
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
	pr := newPrinter(os.Stdout, g.json)
	var after uint64
	for _, r := range last {
		pr.print(r)
		after = r.Seq
	}
	if len(last) == 0 {
		after = q.AfterSeq
	}
	if !follow {
		return nil
	}
	for cmd.Context().Err() == nil {
		fq := f.query()
		fq.AfterSeq = after
		err := c.AuditFollow(cmd.Context(), fq, func(r api.Record) error {
			pr.print(r)
			after = r.Seq
			return nil
		})
		if err != nil && cmd.Context().Err() == nil {
			return err
		}
		// The daemon drops a follower that falls too far behind; resume.
		time.Sleep(100 * time.Millisecond)
	}
	return nil
}

func auditTail(g *globals) *cobra.Command {
	var f queryFlags
	var follow bool
	cmd := &cobra.Command{
		Use: "tail [-f] [--aid AID] [--type TYPE]", Short: "Print the latest audit rows; -f follows new ones", Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error { return runTail(cmd, g, &f, follow) },
	}
	f.add(cmd, false)
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new rows")
	return cmd
}

func auditQuery(g *globals) *cobra.Command {
	var f queryFlags
	var limit int
	cmd := &cobra.Command{
		Use: "query [--aid AID] [--since T] [--until T] [--type TYPE] [--cap CAP] [--result allow|deny]", Short: "Query the audit chain", Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c := g.client()
			q := f.query()
			pr := newPrinter(os.Stdout, g.json)
			n := 0
			for {
				page, err := c.AgentAuditQuery(cmd.Context(), q)
				if err != nil {
					return err
				}
				for _, r := range page.Records {
					if limit > 0 && n >= limit {
						return nil
					}
					pr.print(r)
					n++
				}
				if page.Next == 0 {
					return nil
				}
				q.AfterSeq = page.Next
			}
		},
	}
	f.add(cmd, true)
	cmd.Flags().IntVar(&limit, "limit", 0, "print at most N rows")
	return cmd
}

func auditVerify(g *globals) *cobra.Command {
	var proof string
	cmd := &cobra.Command{
		Use: "verify [--state-dir DIR] [--proof FILE]", Short: "Verify the whole chain offline (works with the daemon stopped)", Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if proof != "" {
				return errors.New("proof verification needs the Merkle checkpoints, not built yet")
			}
			rep, err := audit.Verify(daemon.ChainDir(g.state()))
			if g.json {
				out := map[string]any{"ok": err == nil, "records": rep.Records, "head": rep.Head}
				if err != nil {
					out["first_bad"] = rep.FirstBad
					out["reason"] = rep.Reason
				}
				printJSON(os.Stdout, out)
			}
			if err != nil {
				return fmt.Errorf("chain broken: %w", err)
			}
			if !g.json {
				fmt.Printf("chain OK: %d records, head %s\n", rep.Records, rep.Head)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&proof, "proof", "", "verify an inclusion proof file")
	return cmd
}

// printer writes rows: JSON lines, or one readable (coloured on a
// terminal) line per row.
type printer struct {
	w     io.Writer
	json  bool
	color bool
	enc   *json.Encoder
}

func newPrinter(f *os.File, asJSON bool) *printer {
	return &printer{w: f, json: asJSON, color: isTerminal(f) && os.Getenv("NO_COLOR") == "", enc: json.NewEncoder(f)}
}

func (p *printer) print(r api.Record) {
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
