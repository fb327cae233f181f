package main

import (
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"
)

// maxNotes bounds the notes one agent keeps: names roll over, so an agent run
// with --duration 0 for days does not fill the disk.
const maxNotes = 50

// worker holds one agent's state between steps. It is not safe for
// concurrent use; the run loop calls it from one goroutine.
type worker struct {
	cfg config
	log *log.Logger

	seen     map[string]bool // files a researcher has read
	reviewed map[string]bool // notes a reviewer has reviewed
}

func newWorker(cfg config, l *log.Logger) *worker {
	return &worker{cfg: cfg, log: l, seen: map[string]bool{}, reviewed: map[string]bool{}}
}

// step does one interval's work for the agent's role. Failures are logged,
// never returned: a denied operation is part of the demo.
func (w *worker) step(i int) {
	if err := os.MkdirAll(w.cfg.Notes, 0o755); err != nil {
		w.log.Printf("mkdir notes: %s", describe(err))
		// Keep going: a researcher can still read, and the failed write
		// below logs its own errno.
	}
	switch w.cfg.Role {
	case roleResearcher:
		w.research(i)
	case roleCoder:
		w.code(i)
	case roleReviewer:
		w.review(i)
	case rolePlanner:
		w.plan(i)
	}
}

// notePath is the i-th note of the given kind in this agent's notes dir.
func (w *worker) notePath(kind string, i int, ext string) string {
	return filepath.Join(w.cfg.Notes, fmt.Sprintf("%s-%s-%03d%s", kind, w.cfg.tag(), i%maxNotes, ext))
}

// write stores a note and logs the outcome either way.
func (w *worker) write(path string, data []byte) bool {
	if err := writeFileAtomic(path, data); err != nil {
		w.log.Printf("write %s: %s", w.rel(path), describe(err))
		return false
	}
	w.log.Printf("wrote %s (%d bytes)", w.rel(path), len(data))
	return true
}

// rel shortens path to be relative to the project when it is inside it.
func (w *worker) rel(path string) string {
	r, err := filepath.Rel(w.cfg.Project, path)
	if err != nil || r == ".." || strings.HasPrefix(r, "../") {
		return path
	}
	return r
}
