package cli

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/coconut-os/coconut/internal/audit"
	"github.com/coconut-os/coconut/internal/statedir"
)

// auditArchive is `coconut audit archive`: retention without losing
// proofs (issue 17). It works on the state directory directly, beside a
// running coconutd or without one: the chain's manifest lock orders it
// against the daemon's compressor, and readers follow the manifest.
func auditArchive(g *globals) *cobra.Command {
	var before, to, relink, pubFile string
	var del, yes bool
	cmd := &cobra.Command{
		Use:   "archive --before DATE --to DIR | --relink DIR | --delete --before DATE [--yes]",
		Short: "Move sealed audit segments older than DATE, compressed, to DIR (nothing is deleted; verify and proofs follow them), or, with --delete, delete them keeping their hashes",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir := statedir.Chain(g.state())
			if del {
				if to != "" || relink != "" {
					return usagef("--delete goes with --before only (not --to or --relink)")
				}
				if before == "" {
					return usagef("--delete needs --before DATE")
				}
				t, err := parseBefore(before, time.Now())
				if err != nil {
					return usagef("--before %q: %v", before, err)
				}
				return auditDelete(g, t, yes, pubFile)
			}
			if yes {
				return usagef("--yes goes with --delete")
			}
			if relink != "" {
				if before != "" || to != "" {
					return usagef("--relink goes alone")
				}
				segs, err := audit.Relink(dir, relink)
				if err != nil {
					return err
				}
				if segs == nil {
					segs = []audit.ArchivedSegment{}
				}
				if g.json {
					return printJSON(os.Stdout, map[string]any{"relinked": len(segs), "dir": relink, "segments": segs})
				}
				fmt.Printf("relinked %d archived segments to %s\n", len(segs), relink)
				return nil
			}
			if before == "" || to == "" {
				return usagef("--before DATE and --to DIR are both needed")
			}
			t, err := parseBefore(before, time.Now())
			if err != nil {
				return usagef("--before %q: %v", before, err)
			}
			rep, err := audit.Archive(dir, t, to)
			if err != nil {
				return err
			}
			if rep.Moved == nil {
				rep.Moved = []audit.ArchivedSegment{}
			}
			if g.json {
				return printJSON(os.Stdout, rep)
			}
			if len(rep.Moved) == 0 {
				fmt.Printf("no sealed segment ends before %s: nothing moved\n", t.Format(time.RFC3339))
				return nil
			}
			fmt.Printf("moved %d segments (rows %d..%d, %d rows, %s compressed) to %s; %d compressed first\n",
				len(rep.Moved), rep.Moved[0].First, rep.Moved[len(rep.Moved)-1].Last, rep.Rows, fmt.Sprintf("%.1f MiB", float64(rep.Bytes)/(1<<20)), rep.To, rep.Compressed)
			return nil
		},
	}
	cmd.Flags().StringVar(&before, "before", "", "segments whose last row is older than this: YYYY-MM-DD (UTC), RFC 3339, or an age (30d, 12h)")
	cmd.Flags().StringVar(&to, "to", "", "the archive directory (created 0700 if missing)")
	cmd.Flags().BoolVar(&del, "delete", false, "delete (not move) the sealed segments whose rows are all older than --before and covered by a signed checkpoint; their hashes stay, so later rows stay provable")
	cmd.Flags().BoolVar(&yes, "yes", false, "with --delete: do not ask (needed with --json or without a terminal)")
	cmd.Flags().StringVar(&pubFile, "pub", "", "with --delete: the host public key checkpoints are verified with (default: the state directory's)")
	cmd.Flags().StringVar(&relink, "relink", "", "the archive directory now lives here (mounted or restored elsewhere): point the manifest at it, checking every file's sum")
	return cmd
}

// parseBefore reads --before: a date (midnight UTC), RFC 3339, or an age
// before now in days (30d) or as a Go duration (12h).
func parseBefore(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	if d, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.ParseUint(d, 10, 16); err == nil && n > 0 {
			return now.Add(-time.Duration(n) * 24 * time.Hour), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("want YYYY-MM-DD, RFC 3339, or an age like 30d or 12h")
}
