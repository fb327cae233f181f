package manifest

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestExamples parses every examples/**/*.yaml so the examples never rot.
func TestExamples(t *testing.T) {
	root := filepath.Join("..", "..", "examples")
	var files []string
	err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !e.IsDir() && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk examples: %v", err)
	}
	if len(files) == 0 {
		t.Fatal("no example manifests found")
	}
	parsed := map[string]*Manifest{}
	for _, f := range files {
		t.Run(filepath.ToSlash(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			m, err := Parse(filepath.Base(f), data)
			if err != nil {
				t.Fatalf("parse:\n%v", err)
			}
			parsed[m.Metadata.Name] = m
		})
	}
	t.Run("dream-team", func(t *testing.T) {
		m := parsed["dream-team"]
		if m == nil {
			t.Fatal("examples have no dream-team manifest")
		}
		inst := m.Instances()
		if len(inst) != 31 {
			t.Fatalf("dream team has %d instances, want 31", len(inst))
		}
		counts := map[string]int{}
		var nosy *AgentSpec
		for _, in := range inst {
			counts[in.Spec.Class]++
			if in.Name == "nosy-reviewer" {
				nosy = in.Spec
			}
		}
		want := map[string]int{"planner": 1, "researcher": 10, "coder": 10, "reviewer": 10}
		for class, n := range want {
			if counts[class] != n {
				t.Errorf("class %s has %d instances, want %d", class, counts[class], n)
			}
		}
		if nosy == nil || !contains(nosy.Command, "--probe-ssh") {
			t.Fatal("nosy-reviewer does not pass --probe-ssh")
		}
		// The point of the demo: the nosy reviewer's bundle must not reach
		// the SSH key, while it does reach the project.
		home := "/home/maya"
		reads := func(p string) bool {
			for _, c := range nosy.Capabilities {
				if c.Name() == "fs.read" && c.Expand(home).MatchPath(p) {
					return true
				}
			}
			return false
		}
		if reads(home + "/.ssh/id_ed25519") {
			t.Fatal("nosy-reviewer may read ~/.ssh/id_ed25519")
		}
		if !reads(home + "/projects/dream-team/README.md") {
			t.Fatal("nosy-reviewer may not read the project")
		}
		if got := inst[1].Name; got != "researcher-1" {
			t.Fatalf("second instance = %q, want researcher-1", got)
		}
	})
}
