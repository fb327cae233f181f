package audit

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// moduleRoot is the repository root, two levels above this package.
const moduleRoot = "../.."

// rowTypeConstants returns the row types: the string constants named
// Type* declared in this package's non-test files.
func rowTypeConstants(t *testing.T) map[string]string {
	t.Helper()
	fset := token.NewFileSet()
	pkgs, err := parser.ParseDir(fset, ".", func(fi fs.FileInfo) bool { return !strings.HasSuffix(fi.Name(), "_test.go") }, 0)
	if err != nil {
		t.Fatal(err)
	}
	types := map[string]string{} // value -> constant name
	for _, f := range pkgs["audit"].Files {
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.CONST {
				continue
			}
			for _, s := range g.Specs {
				vs := s.(*ast.ValueSpec)
				for i, n := range vs.Names {
					if !strings.HasPrefix(n.Name, "Type") || i >= len(vs.Values) {
						continue
					}
					lit, ok := vs.Values[i].(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						t.Fatalf("row type constant %s is not a string literal", n.Name)
					}
					v, _ := strconv.Unquote(lit.Value)
					if prev, dup := types[v]; dup {
						t.Errorf("row type %q declared twice: %s and %s", v, prev, n.Name)
					}
					types[v] = n.Name
				}
			}
		}
	}
	if len(types) == 0 {
		t.Fatal("no Type* constants found")
	}
	return types
}

// TestRowTypesDocumented: docs/audit-format.md "Row types" lists exactly
// the row type constants, each once.
func TestRowTypesDocumented(t *testing.T) {
	consts := rowTypeConstants(t)
	doc, err := os.ReadFile(filepath.Join(moduleRoot, "docs", "audit-format.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(doc), "\n## Row types\n")
	if !ok {
		t.Fatal(`docs/audit-format.md has no "## Row types" section`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	row := regexp.MustCompile("(?m)^\\| `([^`]+)` \\|")
	documented := map[string]bool{}
	for _, m := range row.FindAllStringSubmatch(section, -1) {
		if documented[m[1]] {
			t.Errorf("docs/audit-format.md lists row type %q twice", m[1])
		}
		documented[m[1]] = true
		if _, ok := consts[m[1]]; !ok {
			t.Errorf("docs/audit-format.md lists row type %q, which is no Type* constant of internal/audit", m[1])
		}
	}
	for v, name := range consts {
		if !documented[v] {
			t.Errorf("row type %q (audit.%s) is missing from docs/audit-format.md \"Row types\"", v, name)
		}
	}
}
