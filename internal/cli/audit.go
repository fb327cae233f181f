package cli

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/coconut-os/coconut/internal/anchor"
	"github.com/coconut-os/coconut/internal/checkpoint"
	"github.com/coconut-os/coconut/internal/sign"
	"github.com/coconut-os/coconut/internal/statedir"
	"github.com/coconut-os/coconut/internal/tail"
)

func auditCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Read and verify the audit chain"}
	cmd.AddCommand(tail.Command(&g.socket, &g.json), auditQuery(g), auditVerify(g), auditProve(g), auditArchive(g), auditTiles(g))
	return cmd
}

func auditQuery(g *globals) *cobra.Command {
	var f tail.Flags
	var limit int
	cmd := &cobra.Command{
		Use: "query [--aid AID] [--since T] [--until T] [--type TYPE] [--cap CAP] [--result allow|deny]", Short: "Query the audit chain", Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c := g.client()
			q := f.Query()
			pr := tail.NewPrinter(os.Stdout, g.json)
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
					pr.Print(r)
					n++
				}
				if page.Next == 0 {
					return nil
				}
				q.AfterSeq = page.Next
			}
		},
	}
	f.Add(cmd, true)
	cmd.Flags().IntVar(&limit, "limit", 0, "print at most N rows")
	return cmd
}

func auditVerify(g *globals) *cobra.Command {
	var proof, pubFile string
	var av anchorFlags
	var incremental bool
	var wf witnessFlags
	cmd := &cobra.Command{
		Use: "verify [--state-dir DIR] [--incremental] [--proof FILE] [--pub FILE] [--seal-key SEED] [--tpm-socket PATH] [--witness VKEY]...", Short: "Verify the whole chain and its checkpoints offline, or one proof (works with the daemon stopped)", Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			pub, err := hostPublicKey(g, pubFile)
			if err != nil {
				return err
			}
			if proof != "" {
				if len(wf.vkeys) > 0 {
					return usagef("--witness checks the chain's cosignatures, not a proof file")
				}
				return verifyProofFile(g, proof, pub)
			}
			return verifyChain(g, pub, &av, &wf, incremental)
		},
	}
	cmd.Flags().BoolVar(&incremental, "incremental", false, "verify only the rows after the checkpoint the last verify recorded (STATE/"+checkpoint.VerifiedName+"), and that the latest checkpoint is consistent with it")
	cmd.Flags().StringVar(&av.sealKey, "seal-key", "", "check every forward-secure seal with this verification seed (64 hex digits, or a file holding them)")
	cmd.Flags().StringVar(&av.tpmSocket, "tpm-socket", "", "read the TPM anchor through this swtpm socket (default /dev/tpmrm0)")
	cmd.Flags().BoolVar(&av.skipTPM, "skip-tpm", false, "do not check the TPM anchor (a copied state dir on another machine)")
	cmd.Flags().StringVar(&proof, "proof", "", "verify an inclusion proof file (from coconut audit prove) instead of the chain")
	cmd.Flags().StringVar(&pubFile, "pub", "", "the host public key (default STATE/keys/host.pub)")
	cmd.Flags().StringArrayVar(&wf.vkeys, "witness", nil, "require this witness's cosignature (its note verifier key, or @FILE) on the latest checkpoint, and the chain to match the newest checkpoint it cosigned (repeatable)")
	return cmd
}

// verifyChain checks the BLAKE3 chain and every signed checkpoint in one
// pass, and names the first bad seq.
func verifyChain(g *globals, pub ed25519.PublicKey, av *anchorFlags, wf *witnessFlags, incremental bool) error {
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
	wcs, err := wf.checks(g.state(), pub) // issue 17
	if err != nil {
		if g.json {
			printJSON(os.Stdout, map[string]any{"ok": false, "reason": err.Error()})
		}
		return fmt.Errorf("witness cosignatures: %w", err)
	}
	checkers, notes, err := av.checkers(g.state(), dir)
	if err != nil {
		if g.json {
			printJSON(os.Stdout, map[string]any{"ok": false, "reason": err.Error()})
		}
		return fmt.Errorf("anchor broken: %w", err)
	}
	for _, c := range wcs {
		if c.checker != nil {
			checkers = append(checkers, c.checker)
		}
	}
	vr, cr, ver, err := anchor.VerifyChainWith(dir, pub, checkpoint.VerifyOptions{Since: since}, checkers...)
	wres, werr := witnessResults(wcs, cr.Latest, err)
	var from uint64
	if since != nil {
		from = since.Size
	}
	if err == nil && werr != nil {
		err = werr // the chain verifies; a witness's cosignature is missing or old
		vr.Reason = err.Error()
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
		if len(wcs) > 0 {
			out["witnesses"] = wres
		}
		if cr.Deleted > 0 {
			// Rows 1..N deleted (`coconut audit archive --delete`): their count and the last seq are N.
			out["deleted_rows"], out["deleted_through"] = cr.Deleted, cr.Deleted
		}
		if err != nil {
			out["first_bad"] = vr.FirstBad
			out["reason"] = vr.Reason
			if werr != nil {
				out["reason"] = werr.Error()
			}
		}
		printJSON(os.Stdout, out)
	}
	if werr != nil {
		return fmt.Errorf("witness check failed: %w", werr)
	}
	if err != nil {
		return fmt.Errorf("chain broken: %w", err)
	}
	if !g.json {
		if since != nil {
			fmt.Printf("verified rows %d..%d only (incremental; rows up to %d were verified before, and the latest checkpoint is consistent with that one)\n", from+1, vr.Records, from)
		}
		if cr.Deleted > 0 {
			fmt.Printf("rows 1..%d were deleted (coconut audit archive --delete): verified from the recorded head and Merkle compact range at %d; every later checkpoint's root checked\n", cr.Deleted, cr.Deleted)
		}
		fmt.Printf("chain OK: %d records, head %s; %d signed checkpoints, the latest covers %d records\n", vr.Records, vr.Head, cr.Checkpoints, cr.Latest.Size)
		for _, n := range notes {
			fmt.Println(n)
		}
		printWitnessResults(wres)
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

// hostPublicKey loads the host's public key from pubFile, or from the
// state directory when pubFile is "".
func hostPublicKey(g *globals, pubFile string) (ed25519.PublicKey, error) {
	if pubFile == "" {
		pubFile = statedir.HostPub(g.state())
	}
	pub, err := sign.LoadPublicKey(pubFile)
	if err != nil {
		return nil, fmt.Errorf("host public key: %w", err)
	}
	return pub, nil
}
