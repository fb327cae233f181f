package main

import (
	"bytes"
	"log"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a log sink safe to read while a goroutine writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newProject makes a temp project with a few files to read.
func newProject(t *testing.T) string {
	t.Helper()
	p := t.TempDir()
	files := map[string]string{
		"README.md":         "# dream team\n\nWe build things.\n",
		"src/main.go":       "package main\n\nfunc main() {}\n",
		"src/util/util.go":  "package util\n",
		"docs/design.txt":   "one two three\nfour\n",
		".git/config":       "hidden, never read\n",
		"notes/old/x.md":    "the agents' own output, never researched\n",
		"data/empty.txt":    "",
		"data/more/deep.md": "deep\n",
	}
	for name, content := range files {
		path := filepath.Join(p, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

func testConfig(project, role, name string) config {
	return config{
		Role: role, Project: project, Notes: filepath.Join(project, "notes", role),
		Interval: time.Millisecond, InferEvery: 1, Name: name, Model: "sim",
	}
}

func listNotes(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("notes dir: %v", err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func TestRoles(t *testing.T) {
	project := newProject(t)
	var logs syncBuffer
	l := log.New(&logs, "", 0)

	// Run in team order, two iterations each, so the reviewer and planner
	// find the others' output.
	workers := map[string]*worker{}
	for _, role := range []string{roleResearcher, roleCoder, roleReviewer, rolePlanner} {
		w := newWorker(testConfig(project, role, role+"-1"), l)
		workers[role] = w
		for i := range 2 {
			w.step(i)
		}
	}

	tests := []struct {
		role      string
		wantFiles []string
		contains  string // in the first file
	}{
		{roleResearcher, []string{"research-researcher-1-000.md", "research-researcher-1-001.md"}, "lines"},
		{roleCoder, []string{"snippet-coder-1-000.go.txt", "snippet-coder-1-001.go.txt"}, "func Step000(n int) int"},
		{roleReviewer, []string{"review-reviewer-1-000.md", "review-reviewer-1-001.md"}, "looks fine"},
		{rolePlanner, []string{"plan-planner-1.md"}, "- coder: 2 files, latest snippet-coder-1-00"},
	}
	for _, tt := range tests {
		t.Run(tt.role, func(t *testing.T) {
			dir := filepath.Join(project, "notes", tt.role)
			got := strings.Join(listNotes(t, dir), ",")
			if got != strings.Join(tt.wantFiles, ",") {
				t.Fatalf("notes = %s, want %v", got, tt.wantFiles)
			}
			data, err := os.ReadFile(filepath.Join(dir, tt.wantFiles[0]))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(data), tt.contains) {
				t.Errorf("%s lacks %q:\n%s", tt.wantFiles[0], tt.contains, data)
			}
		})
	}

	t.Run("researcher read six files, no hidden or notes", func(t *testing.T) {
		seen := workers[roleResearcher].seen
		if len(seen) != 6 {
			t.Errorf("researcher read %d files, want 6: %v", len(seen), seen)
		}
		for p := range seen {
			if strings.Contains(p, "/.git/") || strings.Contains(p, "/notes/") {
				t.Errorf("researcher read %s", p)
			}
		}
		if !strings.Contains(logs.String(), "research: read docs/design.txt (2 lines, 4 words)") {
			t.Errorf("log lacks the design.txt counts:\n%s", logs.String())
		}
	})
	t.Run("reviewer skips its own notes", func(t *testing.T) {
		for k := range workers[roleReviewer].reviewed {
			if strings.Contains(k, "reviewer-1") {
				t.Errorf("reviewer reviewed its own %s", k)
			}
		}
		// Everything the others wrote: 2 research notes, 2 snippets, old/x.md.
		if got := len(workers[roleReviewer].reviewed); got != 5 {
			t.Errorf("reviewed %d notes, want 5", got)
		}
	})
	t.Run("planner counts the team's files", func(t *testing.T) {
		data, err := os.ReadFile(filepath.Join(project, "notes", rolePlanner, "plan-planner-1.md"))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"revision 1", "- researcher: 2 files", "- reviewer: 2 files", "- old: 1 files"} {
			if !strings.Contains(string(data), want) {
				t.Errorf("plan lacks %q:\n%s", want, data)
			}
		}
	})
}

func TestResearcherStartsOver(t *testing.T) {
	project := t.TempDir()
	if err := os.WriteFile(filepath.Join(project, "only.txt"), []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	w := newWorker(testConfig(project, roleResearcher, "r"), log.New(&logs, "", 0))
	w.step(0)
	w.step(1)
	if got := strings.Count(logs.String(), "research: read only.txt"); got != 2 {
		t.Errorf("read only.txt %d times, want 2:\n%s", got, logs.String())
	}
	if !strings.Contains(logs.String(), "read all 1 files; starting over") {
		t.Errorf("no start-over line:\n%s", logs.String())
	}
}

// A failing file operation is logged with its errno number and the agent
// keeps going; here the notes "directory" is a plain file (ENOTDIR, 20).
func TestFailuresAreLoggedWithErrno(t *testing.T) {
	for _, role := range []string{roleResearcher, roleCoder, roleReviewer, rolePlanner} {
		t.Run(role, func(t *testing.T) {
			project := newProject(t)
			cfg := testConfig(project, role, "x")
			cfg.Notes = filepath.Join(project, "README.md", "notes")
			var logs syncBuffer
			w := newWorker(cfg, log.New(&logs, "", 0))
			w.step(0)
			w.step(1) // still alive
			out := logs.String()
			if !strings.Contains(out, "mkdir notes: mkdir "+filepath.Join(project, "README.md")+": not a directory (errno 20)") {
				t.Errorf("no errno for mkdir:\n%s", out)
			}
			if !strings.Contains(out, "(errno 20)") || strings.Contains(out, "wrote ") {
				t.Errorf("unexpected log:\n%s", out)
			}
		})
	}
}
