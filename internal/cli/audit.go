package cli

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/coconut-os/coconut/api"
	"github.com/coconut-os/coconut/client"
	"github.com/coconut-os/coconut/internal/anchor"
	"github.com/coconut-os/coconut/internal/checkpoint"
	"github.com/coconut-os/coconut/internal/sign"
	"github.com/coconut-os/coconut/internal/statedir"
)

func auditCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Read and verify the audit chain"}
	cmd.AddCommand(auditTail(g), auditQuery(g), auditVerify(g), auditProve(g))
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
	if follow && !g.json {
		return tailView(cmd.Context(), c, f, newPrinter(os.Stdout, false)) // issue 13: coconut-tail's view
	}
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
	// issue 13: the daemon's event stream, the one every live view reads.
	st, err := c.Events(cmd.Context(), after, f.eventFilter())
	if err != nil {
		return err
	}
	defer st.Close()
	for st.Next() {
		pr.print(st.Record())
	}
	return st.Err()
}

// eventFilter is the part of the flags the event stream filters on.
func (f *queryFlags) eventFilter() client.EventFilter {
	ef := client.EventFilter{Type: f.typ, Result: f.result}
	if f.aid != 0 {
		aid := f.aid
		ef.AID = &aid
	}
	return ef
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
	var proof, pubFile string
	var av anchorFlags
	var incremental bool
	cmd := &cobra.Command{
		Use: "verify [--state-dir DIR] [--incremental] [--proof FILE] [--pub FILE] [--seal-key SEED] [--tpm-socket PATH]", Short: "Verify the whole chain and its checkpoints offline, or one proof (works with the daemon stopped)", Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if pubFile == "" {
				pubFile = statedir.HostPub(g.state())
			}
			pub, err := sign.LoadPublicKey(pubFile)
			if err != nil {
				return fmt.Errorf("host public key: %w", err)
			}
			if proof != "" {
				return verifyProofFile(g, proof, pub)
			}
			return verifyChain(g, pub, &av, incremental)
		},
	}
	cmd.Flags().BoolVar(&incremental, "incremental", false, "verify only the rows after the checkpoint the last verify recorded (STATE/"+checkpoint.VerifiedName+"), and that the latest checkpoint is consistent with it")
	cmd.Flags().StringVar(&av.sealKey, "seal-key", "", "check every forward-secure seal with this verification seed (64 hex digits, or a file holding them)")
	cmd.Flags().StringVar(&av.tpmSocket, "tpm-socket", "", "read the TPM anchor through this swtpm socket (default /dev/tpmrm0)")
	cmd.Flags().BoolVar(&av.skipTPM, "skip-tpm", false, "do not check the TPM anchor (a copied state dir on another machine)")
	cmd.Flags().StringVar(&proof, "proof", "", "verify an inclusion proof file (from coconut audit prove) instead of the chain")
	cmd.Flags().StringVar(&pubFile, "pub", "", "the host public key (default STATE/keys/host.pub)")
	return cmd
}

// verifyChain checks the BLAKE3 chain and every signed checkpoint in one
// pass, and names the first bad seq.
func verifyChain(g *globals, pub ed25519.PublicKey, av *anchorFlags, incremental bool) error {
	dir := statedir.Chain(g.state())
	verifiedPath := filepath.Join(g.state(), checkpoint.VerifiedName)
	var since *checkpoint.Verified
	if incremental {
		v, err := checkpoint.LoadVerified(verifiedPath)
		if err != nil {
			return err
		}
		since = v // nil: none recorded yet, so this run is a full one
	}
	checkers, notes, err := av.checkers(g.state(), dir)
	if err != nil {
		if g.json {
			printJSON(os.Stdout, map[string]any{"ok": false, "reason": err.Error()})
		}
		return fmt.Errorf("anchor broken: %w", err)
	}
	vr, cr, ver, err := anchor.VerifyChainWith(dir, pub, checkpoint.VerifyOptions{Since: since}, checkers...)
	var from uint64
	if since != nil {
		from = since.Size
	}
	if err == nil && ver != nil {
		// Recorded for the next --incremental run; a read-only copy of a
		// state dir still verifies.
		if serr := checkpoint.SaveVerified(verifiedPath, ver); serr != nil {
			fmt.Fprintf(os.Stderr, "coconut: could not record the verified checkpoint: %v\n", serr)
		}
	}
	if g.json {
		out := map[string]any{"ok": err == nil, "records": vr.Records, "head": vr.Head, "checkpoints": cr.Checkpoints, "checkpoint_size": cr.Latest.Size, "anchor": notes, "incremental": since != nil, "verified_after": from}
		if err != nil {
			out["first_bad"] = vr.FirstBad
			out["reason"] = vr.Reason
		}
		printJSON(os.Stdout, out)
	}
	if err != nil {
		return fmt.Errorf("chain broken: %w", err)
	}
	if !g.json {
		if since != nil {
			fmt.Printf("verified rows %d..%d only (incremental; rows up to %d were verified before, and the latest checkpoint is consistent with that one)\n", from+1, vr.Records, from)
		}
		fmt.Printf("chain OK: %d records, head %s; %d signed checkpoints, the latest covers %d records\n", vr.Records, vr.Head, cr.Checkpoints, cr.Latest.Size)
		for _, n := range notes {
			fmt.Println(n)
		}
	}
	return nil
}

func verifyProofFile(g *globals, file string, pub ed25519.PublicKey) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("read proof: %w", err)
	}
	var p checkpoint.Proof
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return fmt.Errorf("proof %s: %w", file, err)
	}
	cp, rec, err := checkpoint.VerifyInclusion(&p, pub)
	if err != nil {
		return fmt.Errorf("proof %s does not verify: %w", file, err)
	}
	if g.json {
		printJSON(os.Stdout, map[string]any{"ok": true, "seq": rec.Seq, "tree_size": cp.Size, "origin": cp.Origin, "consistent": p.Consistency != nil})
		return nil
	}
	fmt.Printf("proof OK: row %d (%s, aid %d) is in the chain signed by %s at size %d\n", rec.Seq, rec.Type, rec.AID, cp.Origin, cp.Size)
	return nil
}

func auditProve(g *globals) *cobra.Command {
	var out string
	var old uint64
	cmd := &cobra.Command{
		Use: "prove SEQ [--out FILE]", Short: "Write an inclusion proof of one row to the latest signed checkpoint", Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			seq, err := strconv.ParseUint(args[0], 10, 64)
			if err != nil || seq == 0 {
				return usagef("SEQ %q: must be a positive number", args[0])
			}
			p, err := g.client().AuditProve(cmd.Context(), seq, old)
			if err != nil {
				return err
			}
			b, err := json.MarshalIndent(p, "", "  ")
			if err != nil {
				return err
			}
			b = append(b, '\n')
			if out == "" || out == "-" {
				_, err = os.Stdout.Write(b)
				return err
			}
			if err := os.WriteFile(out, b, 0o644); err != nil {
				return fmt.Errorf("write proof: %w", err)
			}
			if !g.json {
				fmt.Fprintf(os.Stderr, "wrote proof of row %d to checkpoint of size %d: %s\n", seq, p.TreeSize, out)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "write the proof here (default: standard output)")
	cmd.Flags().Uint64Var(&old, "consistent-with", 0, "also prove the checkpoint extends the earlier checkpoint of this size")
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
