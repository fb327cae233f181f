package capability

import (
	"fmt"
	"path"
	"strings"
)

// MaxPath is the longest fs scope accepted (PATH_MAX).
const MaxPath = 4096

// checkPath validates an fs scope: an absolute path or ~, ~/..., made of
// non-empty components without . or .., where * globs within one component
// and ** may only be the whole last component.
func checkPath(p string) error {
	if len(p) > MaxPath {
		return fmt.Errorf("path longer than %d bytes", MaxPath)
	}
	if strings.IndexByte(p, 0) >= 0 {
		return fmt.Errorf("path contains NUL")
	}
	if p == "/" || p == "~" {
		return nil
	}
	if strings.HasSuffix(p, "/") {
		return fmt.Errorf("trailing '/' not allowed (write %s**)", p)
	}
	var rest string
	switch {
	case strings.HasPrefix(p, "/"):
		rest = p[1:]
	case strings.HasPrefix(p, "~/"):
		rest = p[2:]
	default:
		return fmt.Errorf("scope must be an absolute path or start with ~/")
	}
	parts := strings.Split(rest, "/")
	for i, c := range parts {
		switch {
		case c == "":
			return fmt.Errorf("empty path component (//)")
		case c == "." || c == "..":
			return fmt.Errorf("%q component not allowed", c)
		case c == "**":
			if i != len(parts)-1 {
				return fmt.Errorf("** is only allowed as the last component")
			}
		case strings.Contains(c, "**"):
			return fmt.Errorf("** must be a whole component, got %q", c)
		}
	}
	return nil
}

// expandPath replaces a leading ~ with home when home is an absolute clean
// path; otherwise p is returned unchanged (and so matches nothing).
func expandPath(p, home string) string {
	if home == "" || home[0] != '/' || path.Clean(home) != home {
		return p
	}
	home = strings.TrimSuffix(home, "/")
	switch {
	case p == "~":
		if home == "" {
			return "/"
		}
		return home
	case strings.HasPrefix(p, "~/"):
		return home + p[1:]
	}
	return p
}

// components splits an absolute path or pattern into its components; the
// root has none. The bool reports whether it is rooted at ~ rather than /.
func components(p string) ([]string, bool) {
	tilde := false
	switch {
	case p == "~":
		return nil, true
	case strings.HasPrefix(p, "~/"):
		tilde, p = true, p[1:]
	}
	if p == "/" {
		return nil, tilde
	}
	return strings.Split(p[1:], "/"), tilde
}

// MatchPath reports whether an fs capability's scope matches abs, which must
// be absolute and clean. Scopes still holding ~ (not Expanded) match nothing.
func (c Cap) MatchPath(abs string) bool {
	if c.Domain != "fs" || abs == "" || abs[0] != '/' || path.Clean(abs) != abs {
		return false
	}
	if checkPath(c.Scope) != nil {
		return false
	}
	pat, tilde := components(c.Scope)
	if tilde {
		return false
	}
	got, _ := components(abs)
	if n := len(pat); n > 0 && pat[n-1] == "**" {
		pat = pat[:n-1]
		if len(got) < len(pat) {
			return false
		}
		got = got[:len(pat)]
	} else if len(got) != len(pat) {
		return false
	}
	for i := range pat {
		if !globMatch(pat[i], got[i]) {
			return false
		}
	}
	return true
}

// globMatch matches s against pattern, where * matches any run of bytes
// (callers split on / first) and every other byte is literal.
func globMatch(pattern, s string) bool {
	// Iterative matcher with one backtrack point: linear in practice and
	// never recursive, so hostile patterns cannot blow the stack.
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case p < len(pattern) && pattern[p] == s[i]:
			p++
			i++
		case star >= 0:
			p = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// coversPath reports whether every path matched by pattern o is matched by
// pattern c. Both must be rooted the same way (both ~ or both /), except
// that /** covers everything.
func coversPath(c, o string) bool {
	if checkPath(c) != nil || checkPath(o) != nil {
		return false
	}
	if c == o || c == "/**" {
		return true
	}
	pc, ct := components(c)
	po, ot := components(o)
	if ct != ot {
		return false
	}
	cAll := len(pc) > 0 && pc[len(pc)-1] == "**"
	oAll := len(po) > 0 && po[len(po)-1] == "**"
	if cAll {
		pc = pc[:len(pc)-1]
	}
	if oAll {
		po = po[:len(po)-1]
	}
	switch {
	case cAll && len(po) < len(pc):
		return false
	case !cAll && (oAll || len(po) != len(pc)):
		return false
	}
	// A * in o is matched as a literal byte: it can only be absorbed by a *
	// in c, so if c matches o's text, c matches every path o matches.
	for i := range pc {
		if !globMatch(pc[i], po[i]) {
			return false
		}
	}
	return true
}
