package audit

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestNoRecordLiteralsOutside: no non-test Go file outside internal/audit
// builds an audit.Record by hand (a composite literal of the type, or an
// element of a []audit.Record / map[…]audit.Record literal): rows are made
// by this package's constructors, so their types and fields stay in one
// place.
func TestNoRecordLiteralsOutside(t *testing.T) {
	self, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	files := 0
	err = filepath.WalkDir(moduleRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			abs, _ := filepath.Abs(path)
			if abs == self || path != moduleRoot && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata" || name == "vendor" || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		files++
		found = append(found, recordLiterals(t, path)...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 100 {
		t.Fatalf("walked only %d Go files from %s: not the repository", files, moduleRoot)
	}
	slices.Sort(found)
	for _, f := range found {
		t.Errorf("%s: audit.Record built by hand; add or use a constructor in internal/audit", f)
	}
}

// recordLiterals returns file:line of each audit.Record literal in path.
func recordLiterals(t *testing.T, path string) []string {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	name := ""
	for _, imp := range f.Imports {
		if p, _ := strconv.Unquote(imp.Path.Value); p == "github.com/coconut-os/coconut/internal/audit" {
			name = "audit"
			if imp.Name != nil {
				name = imp.Name.Name
			}
		}
	}
	if name == "" || name == "_" {
		return nil
	}
	isRecord := func(e ast.Expr) bool {
		if s, ok := e.(*ast.StarExpr); ok {
			e = s.X
		}
		sel, ok := e.(*ast.SelectorExpr)
		if !ok || sel.Sel.Name != "Record" {
			return false
		}
		id, ok := sel.X.(*ast.Ident)
		return ok && id.Name == name
	}
	var out []string
	at := func(n ast.Node) { out = append(out, fset.Position(n.Pos()).String()) }
	ast.Inspect(f, func(n ast.Node) bool {
		lit, ok := n.(*ast.CompositeLit)
		if !ok {
			return true
		}
		if isRecord(lit.Type) {
			at(lit)
			return true
		}
		var elem ast.Expr // element type of a slice, array or map literal
		switch ty := lit.Type.(type) {
		case *ast.ArrayType:
			elem = ty.Elt
		case *ast.MapType:
			elem = ty.Value
		}
		if elem == nil || !isRecord(elem) {
			return true
		}
		for _, e := range lit.Elts {
			if kv, ok := e.(*ast.KeyValueExpr); ok {
				e = kv.Value
			}
			if u, ok := e.(*ast.UnaryExpr); ok && u.Op == token.AND {
				e = u.X
			}
			if c, ok := e.(*ast.CompositeLit); ok && c.Type == nil {
				at(c)
			}
		}
		return true
	})
	return out
}
