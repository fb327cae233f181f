package capability

import (
	"net/netip"
)

// NetRule is the parsed scope of a net.connect or net.bind capability, for
// enforcers that compile scopes into kernel rules.
type NetRule struct {
	// Any is true for the host "*": every address of both families. Prefix
	// is then the zero value.
	Any bool
	// Prefix is the allowed address block, masked; a bare address is a full
	// length prefix. IPv4 is never written IPv4-mapped.
	Prefix netip.Prefix
	// Lo and Hi bound the allowed ports, inclusive, within 1..65535.
	Lo, Hi uint16
}

// NetRule returns the parsed scope of a net capability. The error wraps
// ErrUnknownDomain for a capability outside the net domain and ErrScope for
// a scope that does not parse.
func (c Cap) NetRule() (NetRule, error) {
	if c.Domain != "net" {
		return NetRule{}, fail(c.String(), ErrUnknownDomain, "not a net capability")
	}
	if isUnix(c.Scope) {
		return NetRule{}, fail(c.String(), ErrScope, "a Unix socket has no address or port (see UnixSocket)")
	}
	ns, err := parseNet(c.Scope)
	if err != nil {
		return NetRule{}, fail(c.String(), ErrScope, "%v", err)
	}
	return NetRule{Any: ns.any, Prefix: ns.prefix, Lo: ns.lo, Hi: ns.hi}, nil
}
