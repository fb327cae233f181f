package main

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
)

const (
	// filesPerStep is how many new files a researcher reads each interval.
	filesPerStep = 3
	// maxVisit bounds one walk, so a huge project does not make 31 agents
	// stat the whole tree every few seconds.
	maxVisit = 5000
)

var errWalkDone = errors.New("walk done")

// research reads a few project files it has not read yet and writes a note
// with their line and word counts.
func (w *worker) research(i int) {
	files := w.unread(filesPerStep)
	if len(files) == 0 && len(w.seen) > 0 {
		w.log.Printf("research: read all %d files; starting over", len(w.seen))
		clear(w.seen)
		files = w.unread(filesPerStep)
	}
	if len(files) == 0 {
		w.log.Printf("research: nothing to read in %s", w.cfg.Project)
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# research note %d by %s\n\n", i, w.cfg.tag())
	read := 0
	for _, p := range files {
		w.seen[p] = true
		s, err := statFile(p)
		if err != nil {
			w.log.Printf("research: %s", describe(err))
			fmt.Fprintf(&b, "- %s: could not read (%s)\n", w.rel(p), describe(err))
			continue
		}
		read++
		w.log.Printf("research: read %s (%d lines, %d words)", w.rel(p), s.Lines, s.Words)
		fmt.Fprintf(&b, "- %s: %d lines, %d words, %d bytes\n", w.rel(p), s.Lines, s.Words, s.Bytes)
	}
	fmt.Fprintf(&b, "\n%d of %d files read.\n", read, len(files))
	w.write(w.notePath("research", i, ".md"), []byte(b.String()))
}

// unread walks the project for up to n regular files not yet seen, skipping
// the notes tree (the agents' own output) and hidden directories.
func (w *worker) unread(n int) []string {
	notesRoot := filepath.Join(w.cfg.Project, "notes")
	var out []string
	visited := 0
	err := filepath.WalkDir(w.cfg.Project, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			// A refused directory is logged and skipped, the walk goes on.
			w.log.Printf("research: walk: %s", describe(err))
			if d != nil && d.IsDir() && p != w.cfg.Project {
				return fs.SkipDir
			}
			return nil
		}
		visited++
		if visited > maxVisit {
			return errWalkDone
		}
		if d.IsDir() {
			if p != w.cfg.Project && (p == notesRoot || p == w.cfg.Notes || strings.HasPrefix(d.Name(), ".")) {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || w.seen[p] {
			return nil
		}
		out = append(out, p)
		if len(out) >= n {
			return errWalkDone
		}
		return nil
	})
	if err != nil && !errors.Is(err, errWalkDone) {
		w.log.Printf("research: walk: %s", describe(err))
	}
	return out
}
