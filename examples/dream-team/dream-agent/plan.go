package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// plan rewrites this planner's plan file with what each role has produced so
// far: how many notes, and the newest one.
func (w *worker) plan(i int) {
	root := filepath.Dir(w.cfg.Notes)
	dirs, err := os.ReadDir(root)
	if err != nil {
		w.log.Printf("plan: list notes: %s", describe(err))
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# plan by %s, revision %d\n\n", w.cfg.tag(), i)
	total := 0
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		dir := filepath.Join(root, d.Name())
		ents, err := os.ReadDir(dir)
		if err != nil {
			w.log.Printf("plan: list %s: %s", w.rel(dir), describe(err))
			fmt.Fprintf(&b, "- %s: unknown (%s)\n", d.Name(), describe(err))
			continue
		}
		var names []string
		for _, e := range ents {
			if e.Type().IsRegular() && !strings.HasPrefix(e.Name(), ".") && !strings.HasPrefix(e.Name(), "plan-") {
				names = append(names, e.Name())
			}
		}
		sort.Strings(names)
		total += len(names)
		switch len(names) {
		case 0:
			fmt.Fprintf(&b, "- %s: nothing yet; next: get started\n", d.Name())
		default:
			fmt.Fprintf(&b, "- %s: %d files, latest %s; next: keep going\n", d.Name(), len(names), latest(dir, names))
		}
	}
	fmt.Fprintf(&b, "\n%d files produced in all.\n", total)
	w.log.Printf("plan: %d files produced by the team so far", total)
	w.write(filepath.Join(w.cfg.Notes, fmt.Sprintf("plan-%s.md", w.cfg.tag())), []byte(b.String()))
}

// latest is the most recently modified of names in dir ("" when none can be
// stat'ed).
func latest(dir string, names []string) string {
	best, bestT := "", int64(0)
	for _, n := range names {
		info, err := os.Lstat(filepath.Join(dir, n))
		if err != nil {
			continue
		}
		if t := info.ModTime().UnixNano(); best == "" || t > bestT {
			best, bestT = n, t
		}
	}
	return best
}
