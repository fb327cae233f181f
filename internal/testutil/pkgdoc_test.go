package testutil

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestOnePackageComment: every package of the module (commands, examples
// and test packages included) has exactly one package comment, the doc
// comment on one non-test file's package clause: zero leaves `go doc`
// empty, two or more drift apart.
func TestOnePackageComment(t *testing.T) {
	root := "../.."
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root: %v", err)
	}
	docs := map[string][]string{} // package dir -> files with a package comment
	pkgs := map[string]bool{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata" || name == "vendor" || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.PackageClauseOnly|parser.ParseComments)
		if err != nil {
			t.Fatalf("parse %s: %v", path, err)
		}
		if ignored(f.Comments, f.Package) {
			return nil
		}
		dir := filepath.Dir(path)
		pkgs[dir] = true
		if f.Doc != nil {
			docs[dir] = append(docs[dir], name)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(pkgs) < 20 {
		t.Fatalf("found only %d packages under %s", len(pkgs), root)
	}
	dirs := slices.Sorted(func(yield func(string) bool) {
		for d := range pkgs {
			if !yield(d) {
				return
			}
		}
	})
	for _, dir := range dirs {
		rel, _ := filepath.Rel(root, dir)
		switch n := len(docs[dir]); {
		case n == 0:
			t.Errorf("package %s has no package comment (add a doc.go)", rel)
		case n > 1:
			t.Errorf("package %s has %d package comments, want one: %s", rel, n, strings.Join(docs[dir], ", "))
		}
	}
}

// ignored is whether a file is left out of every build (//go:build
// ignore), like the BPF C generators' Go stubs.
func ignored(comments []*ast.CommentGroup, pkg token.Pos) bool {
	for _, g := range comments {
		if g.Pos() >= pkg {
			break
		}
		for _, c := range g.List {
			if strings.HasPrefix(c.Text, "//go:build ") && strings.Contains(c.Text, "ignore") {
				return true
			}
		}
	}
	return false
}
