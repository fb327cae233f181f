package capability

import (
	"fmt"
	"strings"
)

// unixScope begins the scope of a net.connect capability naming a Unix
// socket: net.connect:unix:/run/app.sock (a pathname socket) or
// net.connect:unix:@name (an abstract one).
const unixScope = "unix:"

// MaxUnixPath bounds a Unix socket address: sun_path holds 108 bytes, and a
// pathname needs its terminating NUL (an abstract name its leading one).
const MaxUnixPath = 107

// isUnix reports whether a net scope names a Unix socket.
func isUnix(scope string) bool { return strings.HasPrefix(scope, unixScope) }

// checkUnix validates a unix: scope. The kernel program matches the exact
// address text, so the grammar has no globs: a pattern would look like a
// grant of many sockets and allow none, or worse, be read differently by
// a later matcher.
func checkUnix(verb, scope string) error {
	if verb != "connect" {
		return fmt.Errorf("a Unix socket scope is for net.connect only (net.%s has no unix: form)", verb)
	}
	addr := strings.TrimPrefix(scope, unixScope)
	if strings.ContainsAny(addr, "*?[]{}") {
		return fmt.Errorf("unix socket %q: no globs, the kernel matches the exact address", addr)
	}
	if strings.IndexByte(addr, 0) >= 0 {
		return fmt.Errorf("unix socket address contains NUL")
	}
	if name, ok := strings.CutPrefix(addr, "@"); ok {
		switch {
		case name == "":
			return fmt.Errorf("empty abstract socket name (unix:@NAME)")
		case len(name) > MaxUnixPath:
			return fmt.Errorf("abstract socket name longer than %d bytes", MaxUnixPath)
		}
		return nil
	}
	if !strings.HasPrefix(addr, "/") {
		return fmt.Errorf("unix socket %q must be an absolute path (unix:/PATH) or abstract (unix:@NAME)", addr)
	}
	if len(addr) > MaxUnixPath {
		return fmt.Errorf("unix socket path longer than %d bytes", MaxUnixPath)
	}
	if addr == "/" || strings.HasSuffix(addr, "/") {
		return fmt.Errorf("unix socket path %q ends in '/'", addr)
	}
	for _, c := range strings.Split(addr[1:], "/") {
		switch c {
		case "":
			return fmt.Errorf("empty path component (//) in unix socket path")
		case ".", "..":
			return fmt.Errorf("%q component not allowed in unix socket path (the kernel compares the text)", c)
		}
	}
	return nil
}

// UnixSocket returns the Unix socket address a net.connect:unix: capability
// allows, as the kernel compares it: a pathname as written, an abstract
// name with a NUL byte in place of its '@'. ok is false for any other
// capability.
func (c Cap) UnixSocket() (addr string, ok bool) {
	if c.Domain != "net" || c.Verb != "connect" || !isUnix(c.Scope) {
		return "", false
	}
	a := strings.TrimPrefix(c.Scope, unixScope)
	if checkUnix(c.Verb, c.Scope) != nil {
		return "", false
	}
	if name, ok := strings.CutPrefix(a, "@"); ok {
		return "\x00" + name, true
	}
	return a, true
}

// IsUnix reports whether c is a net capability naming a Unix socket.
func (c Cap) IsUnix() bool { return c.Domain == "net" && isUnix(c.Scope) }
