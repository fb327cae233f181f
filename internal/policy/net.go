package policy

import "github.com/coconut-os/coconut/internal/capability"

// NetRule is one address rule of a bundle: a connect or bind capability's
// prefix and port range.
type NetRule struct {
	Cap  capability.Cap
	Verb string // "connect" or "bind"
	capability.NetRule
}

// NetRules are a bundle's TCP/UDP address rules, the network guard's
// trie. The trie is exact, not coarser: the guard's longest-prefix match
// over folded ranges answers as Decide does for every address and port
// (netguard's rules tests compare them), so the kernel decides these
// alone. Unix socket capabilities are UnixSockets' and other domains are
// skipped; a net capability that does not compile is an error (fail
// closed: a rule not understood is not silently dropped).
func NetRules(caps []capability.Cap) ([]NetRule, error) {
	var out []NetRule
	for _, c := range caps {
		if c.Domain != "net" || c.IsUnix() {
			continue
		}
		r, err := c.NetRule()
		if err != nil {
			return nil, &RuleError{Cap: c, Err: err}
		}
		out = append(out, NetRule{Cap: c, Verb: c.Verb, NetRule: r})
	}
	return out, nil
}

// UnixSockets are the Unix socket addresses a bundle allows, in kernel
// form (a pathname, or NUL and an abstract name): the network guard's
// unix_rules map, bpf-lsm's Unix list and the supervisor's fallback all
// hold exactly this set, and match the exact address text as Decide does.
// A net.connect:unix: capability with no kernel form is an error.
func UnixSockets(caps []capability.Cap) ([]string, error) {
	var out []string
	for _, c := range caps {
		if !c.IsUnix() {
			continue
		}
		addr, ok := c.UnixSocket()
		if !ok {
			return nil, &RuleError{Cap: c}
		}
		out = append(out, addr)
	}
	return out, nil
}

// RuleError is a capability a compile function cannot express.
type RuleError struct {
	Cap capability.Cap
	Err error
}

func (e *RuleError) Error() string {
	if e.Err == nil {
		return e.Cap.String() + ": not expressible as a kernel rule"
	}
	return e.Cap.String() + ": " + e.Err.Error()
}

func (e *RuleError) Unwrap() error { return e.Err }
