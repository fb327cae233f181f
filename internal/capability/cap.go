package capability

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxLen bounds a capability string; longer input is refused before parsing.
const MaxLen = 8192

// Cap is one parsed capability. For application capabilities
// (x.acme.email.send) Domain is "x" and Verb is "acme.email.send"; for
// inference, which has no verb, Verb is empty.
type Cap struct{ Domain, Verb, Scope string }

// parseError keeps the message readable ("fs.read:foo: scope must ...")
// while still matching its sentinel under errors.Is.
type parseError struct {
	input, msg string
	kind       error
}

func (e *parseError) Error() string { return e.input + ": " + e.msg }
func (e *parseError) Unwrap() error { return e.kind }

func fail(input string, kind error, format string, args ...any) error {
	return &parseError{input: input, msg: fmt.Sprintf(format, args...), kind: kind}
}

// Parse parses one capability and returns it in canonical form.
func Parse(s string) (Cap, error) {
	if s == "" {
		return Cap{}, fail(`""`, ErrSyntax, "empty capability")
	}
	if len(s) > MaxLen {
		return Cap{}, fail(s[:32]+"...", ErrSyntax, "longer than %d bytes", MaxLen)
	}
	if !utf8.ValidString(s) {
		return Cap{}, fail(fmt.Sprintf("%q", s), ErrSyntax, "not valid UTF-8")
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return Cap{}, fail(fmt.Sprintf("%q", s), ErrSyntax, "control character at byte %d", i)
		}
	}
	name, scope, hasScope := strings.Cut(s, ":")
	if hasScope && scope == "" {
		return Cap{}, fail(s, ErrScope, "empty scope after ':'")
	}
	c, err := parseName(s, name)
	if err != nil {
		return Cap{}, err
	}
	c.Scope, err = canonScope(s, c, scope, hasScope)
	if err != nil {
		return Cap{}, err
	}
	return c, nil
}

// ParseAll parses every string; the error names the first bad index.
func ParseAll(ss []string) ([]Cap, error) {
	out := make([]Cap, 0, len(ss))
	for i, s := range ss {
		c, err := Parse(s)
		if err != nil {
			return nil, fmt.Errorf("capability %d (%q): %w", i, s, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// String returns the canonical text form.
func (c Cap) String() string {
	if c.Scope == "" {
		return c.Name()
	}
	return c.Name() + ":" + c.Scope
}

// Name returns DOMAIN.VERB without the scope: "fs.read", "inference",
// "x.acme.email.send".
func (c Cap) Name() string {
	if c.Verb == "" {
		return c.Domain
	}
	return c.Domain + "." + c.Verb
}

// KernelEnforced reports whether the enforcer (not the broker or the daemon)
// decides this capability: files and network.
func (c Cap) KernelEnforced() bool { return c.Domain == "fs" || c.Domain == "net" }

// Expand replaces a leading ~ in fs scopes (also inside a cap.grant) with
// home. Other capabilities are returned unchanged. An empty or relative home
// leaves the scope unexpanded, so it matches nothing.
func (c Cap) Expand(home string) Cap {
	switch c.Domain {
	case "fs":
		c.Scope = expandPath(c.Scope, home)
	case "cap":
		inner, err := Parse(c.Scope)
		if err == nil {
			c.Scope = inner.Expand(home).String()
		}
	}
	return c
}

func parseName(s, name string) (Cap, error) {
	domain, verb, ok := strings.Cut(name, ".")
	switch {
	case name == "inference":
		return Cap{Domain: "inference"}, nil
	case !ok || domain == "" || verb == "":
		switch domain {
		case "", "fs", "net", "cap", "x":
			return Cap{}, fail(s, ErrSyntax, "want DOMAIN.VERB[:SCOPE]")
		}
		return Cap{}, fail(s, ErrUnknownDomain, "unknown capability %q", name)
	}
	switch domain {
	case "fs":
		if verb == "read" || verb == "write" || verb == "exec" {
			return Cap{Domain: domain, Verb: verb}, nil
		}
	case "net":
		if verb == "connect" || verb == "bind" {
			return Cap{Domain: domain, Verb: verb}, nil
		}
	case "cap":
		if verb == "grant" {
			return Cap{Domain: domain, Verb: verb}, nil
		}
	case "x":
		if err := checkXName(verb); err != nil {
			return Cap{}, fail(s, ErrSyntax, "%v", err)
		}
		return Cap{Domain: domain, Verb: verb}, nil
	default:
		return Cap{}, fail(s, ErrUnknownDomain, "unknown domain %q (want fs, net, inference, cap or x)", domain)
	}
	return Cap{}, fail(s, ErrUnknownVerb, "unknown verb %q for domain %s", verb, domain)
}

// checkXName checks VENDOR.NAME[.MORE] of an application capability.
func checkXName(v string) error {
	labels := strings.Split(v, ".")
	if len(labels) < 2 {
		return fmt.Errorf("application capability must be x.VENDOR.NAME")
	}
	for _, l := range labels {
		if !isLabel(l) {
			return fmt.Errorf("label %q must be lowercase [a-z0-9-], not starting or ending with '-'", l)
		}
	}
	return nil
}

func isLabel(l string) bool {
	if l == "" || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// canonScope validates the scope for c and returns its canonical form.
func canonScope(s string, c Cap, scope string, has bool) (string, error) {
	if !has && c.Domain != "x" {
		return "", fail(s, ErrScope, "%s needs a scope (%s:SCOPE)", c.Name(), c.Name())
	}
	var (
		out string
		err error
	)
	switch c.Domain {
	case "fs":
		out, err = scope, checkPath(scope)
	case "net":
		if isUnix(scope) {
			out, err = scope, checkUnix(c.Verb, scope) // unix.go
			break
		}
		var ns netScope
		ns, err = parseNet(scope)
		out = ns.String()
	case "inference":
		var is inferScope
		is, err = parseInference(scope)
		out = is.String()
	case "cap":
		var inner Cap
		inner, err = Parse(scope)
		if err == nil && inner.Domain == "cap" {
			return "", fail(s, ErrScope, "cap.grant cannot grant cap.grant")
		}
		if err != nil {
			// The inner error already names the inner string.
			return "", fmt.Errorf("%s: %w", s, err)
		}
		out = inner.String()
	case "x":
		out, err = scope, checkXScope(scope)
	}
	if err != nil {
		return "", fail(s, ErrScope, "%v", err)
	}
	return out, nil
}

func checkXScope(scope string) error {
	if strings.ContainsAny(scope, " \t\r\n") {
		return fmt.Errorf("application scope must not contain spaces")
	}
	return nil
}
