package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

const (
	// notesPerReview is how many of the others' notes a reviewer reads each
	// interval.
	notesPerReview = 3
	// maxNoteRead caps what a reviewer reads of one note.
	maxNoteRead = 64 << 10
)

// review reads a few notes written by the other agents and writes a review.
func (w *worker) review(i int) {
	notes := w.othersNotes(notesPerReview)
	if len(notes) == 0 {
		w.log.Printf("review: no new notes from the others yet")
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# review %d by %s\n\n", i, w.cfg.tag())
	for _, n := range notes {
		w.reviewed[n.key] = true
		data, err := readSmall(n.path, maxNoteRead)
		if err != nil {
			w.log.Printf("review: %s", describe(err))
			fmt.Fprintf(&b, "- %s: could not read (%s)\n", w.rel(n.path), describe(err))
			continue
		}
		lines := bytes.Count(data, []byte{'\n'})
		verdict := "looks fine"
		switch {
		case len(data) == 0:
			verdict = "empty, please redo"
		case lines < 3:
			verdict = "too short, needs more detail"
		case bytes.Contains(data, []byte("could not read")):
			verdict = "reports refused reads, check the capabilities"
		}
		w.log.Printf("review: read %s (%d lines): %s", w.rel(n.path), lines, verdict)
		fmt.Fprintf(&b, "- %s: %d lines, %s\n", w.rel(n.path), lines, verdict)
	}
	w.write(w.notePath("review", i, ".md"), []byte(b.String()))
}

type noteRef struct {
	path string
	key  string // path and mtime: a rolled-over note is new again
}

// othersNotes lists up to n unreviewed notes in the sibling directories of
// this agent's notes dir (and in it, when written by another replica).
func (w *worker) othersNotes(n int) []noteRef {
	root := filepath.Dir(w.cfg.Notes)
	dirs, err := os.ReadDir(root)
	if err != nil {
		w.log.Printf("review: list notes: %s", describe(err))
		return nil
	}
	own := "-" + w.cfg.tag() + "-"
	var out []noteRef
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		dir := filepath.Join(root, d.Name())
		ents, err := os.ReadDir(dir)
		if err != nil {
			w.log.Printf("review: list %s: %s", w.rel(dir), describe(err))
			continue
		}
		for _, e := range ents {
			name := e.Name()
			if !e.Type().IsRegular() || strings.HasPrefix(name, ".") || strings.Contains(name, own) {
				continue
			}
			info, err := e.Info()
			if err != nil {
				continue // removed since the listing
			}
			p := filepath.Join(dir, name)
			key := fmt.Sprintf("%s@%d", p, info.ModTime().UnixNano())
			if w.reviewed[key] {
				continue
			}
			out = append(out, noteRef{path: p, key: key})
			if len(out) >= n {
				return out
			}
		}
	}
	return out
}
