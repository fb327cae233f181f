package manifest

import (
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// decoder walks the YAML node tree, collecting errors and the line of every
// field path it visits.
type decoder struct {
	file  string
	errs  []*Error
	lines map[string]int
}

// val is a node together with where to report problems with it: the line of
// its key (or of the list item) and its field path.
type val struct {
	n     *yaml.Node
	line  int
	field string
}

func (d *decoder) errorf(line int, field, format string, args ...any) {
	d.errs = append(d.errs, Errorf(d.file, line, field, format, args...))
}

// typeName names what a node is, for "must be X, got Y" messages.
func typeName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.ScalarNode:
		switch t := n.ShortTag(); t {
		case "!!str":
			return "a string"
		case "!!int":
			return "an integer"
		case "!!float":
			return "a number"
		case "!!bool":
			return "a boolean"
		case "!!null":
			return "nothing (null)"
		default:
			return "a value tagged " + t
		}
	}
	return "an unknown node"
}

func join(field, key string) string {
	if field == "" {
		return key
	}
	return field + "." + key
}

func item(field string, i int) string { return fmt.Sprintf("%s[%d]", field, i) }

// entry is one key of a mapping, in document order.
type entry struct {
	key string
	v   val
}

// mapping checks that v is a mapping with string keys, none repeated, and —
// when known is non-nil — none outside known. Every key's line is recorded.
func (d *decoder) mapping(v val, known []string) ([]entry, bool) {
	if v.n.Kind != yaml.MappingNode || v.n.ShortTag() != "!!map" {
		d.errorf(v.line, v.field, "must be a mapping, got %s", typeName(v.n))
		return nil, false
	}
	seen := map[string]int{}
	var out []entry
	ok := true
	for i := 0; i+1 < len(v.n.Content); i += 2 {
		k, vn := v.n.Content[i], v.n.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.ShortTag() != "!!str" {
			d.errorf(k.Line, v.field, "keys must be strings, got %s", typeName(k))
			ok = false
			continue
		}
		field := join(v.field, k.Value)
		if first, dup := seen[k.Value]; dup {
			d.errorf(k.Line, field, "duplicate key (first on line %d)", first)
			ok = false
			continue
		}
		seen[k.Value] = k.Line
		if known != nil && !contains(known, k.Value) {
			d.errorf(k.Line, field, "unknown field (known: %s)", strings.Join(known, ", "))
			ok = false
			continue
		}
		d.lines[field] = k.Line
		out = append(out, entry{key: k.Value, v: val{n: vn, line: k.Line, field: field}})
	}
	return out, ok
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// list checks that v is a sequence and returns its items, recording their
// lines.
func (d *decoder) list(v val) ([]val, bool) {
	if v.n.Kind != yaml.SequenceNode || v.n.ShortTag() != "!!seq" {
		d.errorf(v.line, v.field, "must be a list, got %s", typeName(v.n))
		return nil, false
	}
	out := make([]val, len(v.n.Content))
	for i, n := range v.n.Content {
		f := item(v.field, i)
		d.lines[f] = n.Line
		out[i] = val{n: n, line: n.Line, field: f}
	}
	return out, true
}

// str returns a string scalar. Strings may not hold NUL: nothing in a
// manifest needs one, and they truncate C strings downstream.
func (d *decoder) str(v val) (string, bool) {
	if v.n.Kind != yaml.ScalarNode || v.n.ShortTag() != "!!str" {
		hint := ""
		if v.n.Kind == yaml.ScalarNode && v.n.ShortTag() != "!!null" {
			hint = " (quote it)"
		}
		d.errorf(v.line, v.field, "must be a string, got %s%s", typeName(v.n), hint)
		return "", false
	}
	if strings.IndexByte(v.n.Value, 0) >= 0 {
		d.errorf(v.line, v.field, "must not contain NUL")
		return "", false
	}
	return v.n.Value, true
}

// integer returns an integer scalar within [lo, hi].
func (d *decoder) integer(v val, lo, hi int64) (int64, bool) {
	if v.n.Kind != yaml.ScalarNode || v.n.ShortTag() != "!!int" {
		d.errorf(v.line, v.field, "must be an integer, got %s", typeName(v.n))
		return 0, false
	}
	var n int64
	if err := v.n.Decode(&n); err != nil {
		d.errorf(v.line, v.field, "integer %s out of range", v.n.Value)
		return 0, false
	}
	if n < lo || n > hi {
		d.errorf(v.line, v.field, "must be between %d and %d, got %d", lo, hi, n)
		return 0, false
	}
	return n, true
}

// strList returns a list of strings; ok is false if any item is bad.
func (d *decoder) strList(v val) ([]string, []val, bool) {
	items, ok := d.list(v)
	if !ok {
		return nil, nil, false
	}
	out := make([]string, 0, len(items))
	for _, it := range items {
		s, good := d.str(it)
		ok = ok && good
		out = append(out, s)
	}
	return out, items, ok
}

// noAliases refuses anchors' aliases anywhere: they let a small file expand
// into a huge tree, and make one line mean two places.
func (d *decoder) noAliases(n *yaml.Node) {
	if n.Kind == yaml.AliasNode {
		d.errorf(n.Line, "", "YAML aliases (*%s) are not allowed", n.Value)
		return
	}
	for _, c := range n.Content {
		d.noAliases(c)
	}
}
