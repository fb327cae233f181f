// Command gendocs writes the man pages and shell completions generated
// from the coconut command tree (cobra/doc), for `make deb`:
//
//	go run ./packaging/gendocs OUTDIR
//
// OUTDIR/man1 gets coconut.1 and one page per subcommand; OUTDIR/completions
// gets coconut.bash, _coconut (zsh) and coconut.fish. The hand-written
// pages (coconutd.8, coconut-tail.1, coconut-manifest.5) are in packaging/man.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	"github.com/coconut-os/coconut/internal/cli"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: gendocs OUTDIR")
		os.Exit(2)
	}
	if err := run(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "gendocs:", err)
		os.Exit(1)
	}
}

func run(out string) error {
	root := cli.Command()
	root.DisableAutoGenTag = true // reproducible: no generation date in the pages
	man := filepath.Join(out, "man1")
	comp := filepath.Join(out, "completions")
	for _, d := range []string{man, comp} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	hdr := &doc.GenManHeader{Title: "COCONUT", Section: "1", Source: "Coconut", Manual: "Coconut manual"}
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" { // reproducible builds
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("SOURCE_DATE_EPOCH %q: %w", s, err)
		}
		t := time.Unix(sec, 0).UTC()
		hdr.Date = &t
	}
	if err := doc.GenManTree(root, hdr, man); err != nil {
		return fmt.Errorf("man pages: %w", err)
	}
	for name, gen := range map[string]func(*cobra.Command, string) error{
		"coconut.bash": func(c *cobra.Command, p string) error { return c.GenBashCompletionFileV2(p, true) },
		"_coconut":     func(c *cobra.Command, p string) error { return c.GenZshCompletionFile(p) },
		"coconut.fish": func(c *cobra.Command, p string) error { return c.GenFishCompletionFile(p, true) },
	} {
		if err := gen(root, filepath.Join(comp, name)); err != nil {
			return fmt.Errorf("completion %s: %w", name, err)
		}
	}
	return nil
}
