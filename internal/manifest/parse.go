package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// maxErrors bounds how many problems one Parse reports.
const maxErrors = 50

// Parse parses and validates a manifest. file is used only in error
// messages. On failure it returns nil and every problem found (see the
// package comment); on success, a Manifest with defaults filled in.
func Parse(file string, data []byte) (*Manifest, error) {
	d := &decoder{file: file, lines: map[string]int{}}
	root := d.load(data)
	if root == nil {
		return nil, d.err()
	}
	m := &Manifest{File: file, lines: d.lines}
	d.noAliases(root)
	if len(d.errs) > 0 {
		return nil, d.err()
	}
	d.top(val{n: root, line: root.Line}, m)
	if len(d.errs) > 0 {
		return nil, d.err()
	}
	return m, nil
}

// yamlLine pulls the line out of yaml.v3's "yaml: line N: msg" errors.
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// load decodes exactly one YAML document and returns its root node, or nil
// after recording why not.
func (d *decoder) load(data []byte) (root *yaml.Node) {
	switch {
	case len(bytes.TrimSpace(data)) == 0:
		d.errorf(0, "", "empty manifest")
		return nil
	case len(data) > MaxSize:
		d.errorf(0, "", "manifest is %d bytes, larger than the %d byte limit", len(data), MaxSize)
		return nil
	}
	// The parser is third-party code fed untrusted input: a panic in it
	// must become a refusal, not a crashed daemon.
	defer func() {
		if r := recover(); r != nil {
			d.errorf(0, "", "cannot parse YAML: parser failed: %v", r)
			root = nil
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			d.errorf(0, "", "empty manifest (no YAML document)")
		} else {
			d.yamlError(err)
		}
		return nil
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		d.errorf(extra.Line, "", "more than one YAML document; a manifest is exactly one")
		return nil
	case !errors.Is(err, io.EOF):
		d.yamlError(err)
		return nil
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		d.errorf(doc.Line, "", "empty manifest (no YAML document)")
		return nil
	}
	return doc.Content[0]
}

// parserProblems are the messages of yaml.v3's parser (as opposed to its
// scanner). For these, yaml.v3 reports the 0-based line of the enclosing
// construct; scanner errors are already 1-based.
var parserProblems = map[string]bool{
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"did not find expected '-' indicator":    true,
	"did not find expected <document start>": true,
	"did not find expected <stream-start>":   true,
	"did not find expected key":              true,
	"did not find expected node content":     true,
	"found duplicate %TAG directive":         true,
	"found duplicate %YAML directive":        true,
	"found incompatible YAML document":       true,
	"found undefined tag handle":             true,
}

func (d *decoder) yamlError(err error) {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		if parserProblems[m[2]] {
			line++
		}
		d.errorf(line, "", "invalid YAML: %s", m[2])
		return
	}
	d.errorf(0, "", "invalid YAML: %s", strings.TrimPrefix(msg, "yaml: "))
}

// err sorts the collected errors by line (document order) and joins them.
func (d *decoder) err() error {
	sort.SliceStable(d.errs, func(i, j int) bool { return d.errs[i].Line < d.errs[j].Line })
	errs := make([]error, 0, len(d.errs))
	for i, e := range d.errs {
		if i == maxErrors {
			errs = append(errs, Errorf(d.file, 0, "", "%d more errors not shown", len(d.errs)-maxErrors))
			break
		}
		errs = append(errs, e)
	}
	return errors.Join(errs...)
}

// top decodes the document's root mapping.
func (d *decoder) top(v val, m *Manifest) {
	entries, _ := d.mapping(v, []string{"apiVersion", "kind", "metadata", "agents"})
	got := map[string]bool{}
	for _, e := range entries {
		got[e.key] = true
		switch e.key {
		case "apiVersion":
			if s, ok := d.str(e.v); ok {
				if s != APIVersion {
					d.errorf(e.v.line, e.v.field, "must be %q, got %q", APIVersion, s)
				}
				m.APIVersion = s
			}
		case "kind":
			if s, ok := d.str(e.v); ok {
				if s != Kind {
					d.errorf(e.v.line, e.v.field, "must be %q, got %q", Kind, s)
				}
				m.Kind = s
			}
		case "metadata":
			d.metadata(e.v, &m.Metadata)
		case "agents":
			m.Agents = d.agents(e.v)
		}
	}
	if v.n.Kind != yaml.MappingNode {
		return // already reported
	}
	for _, k := range []string{"apiVersion", "kind", "metadata", "agents"} {
		if !got[k] {
			d.errorf(v.line, k, "required")
		}
	}
}

func (d *decoder) metadata(v val, md *Metadata) {
	entries, ok := d.mapping(v, []string{"name", "description"})
	if !ok && entries == nil {
		return
	}
	hasName := false
	for _, e := range entries {
		switch e.key {
		case "name":
			hasName = true
			if s, ok := d.str(e.v); ok {
				if err := checkName(s); err != nil {
					d.errorf(e.v.line, e.v.field, "%v", err)
				}
				md.Name = s
			}
		case "description":
			md.Description, _ = d.str(e.v)
		}
	}
	if !hasName && v.n.Kind == yaml.MappingNode {
		d.errorf(v.line, join(v.field, "name"), "required")
	}
}

// checkName enforces the DNS-label form shared by workload, agent and class
// names: they become cgroup and unit names.
func checkName(s string) error {
	if len(s) == 0 || len(s) > 63 {
		return fmt.Errorf("must be 1 to 63 characters, got %d", len(s))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return fmt.Errorf("%q: only lowercase letters, digits and '-' are allowed", s)
		}
	}
	if s[0] == '-' || s[len(s)-1] == '-' {
		return fmt.Errorf("%q must not start or end with '-'", s)
	}
	return nil
}
