package capability

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// netScope is a parsed HOST:PORT scope. A zero-valued prefix with any=true
// stands for the host "*".
type netScope struct {
	any    bool
	prefix netip.Prefix
	isAddr bool // written as a bare address, not a CIDR
	lo, hi uint16
}

func parseNet(s string) (netScope, error) {
	var ns netScope
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return ns, fmt.Errorf("scope must be HOST:PORT")
	}
	host, port := s[:i], s[i+1:]
	if err := ns.parseHost(host); err != nil {
		return ns, err
	}
	lo, hi, err := parsePorts(port)
	if err != nil {
		return ns, err
	}
	ns.lo, ns.hi = lo, hi
	return ns, nil
}

func (ns *netScope) parseHost(host string) error {
	const want = "host must be an IPv4 address or CIDR, [IPv6], [IPv6/len] or *"
	if host == "*" {
		ns.any = true
		return nil
	}
	v6 := strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") && len(host) >= 2
	if v6 {
		host = host[1 : len(host)-1]
	} else if strings.ContainsAny(host, ":[]") {
		return fmt.Errorf("%s (IPv6 goes in brackets)", want)
	}
	if host == "" {
		return fmt.Errorf("empty host; %s", want)
	}
	var (
		p   netip.Prefix
		err error
	)
	if strings.Contains(host, "/") {
		p, err = netip.ParsePrefix(host)
		if err == nil && p != p.Masked() {
			return fmt.Errorf("CIDR %s has host bits set (write %s)", host, p.Masked())
		}
	} else {
		var a netip.Addr
		a, err = netip.ParseAddr(host)
		if err == nil && a.Zone() != "" {
			return fmt.Errorf("IPv6 zones are not allowed")
		}
		if err == nil {
			ns.isAddr = true
			p = netip.PrefixFrom(a, a.BitLen())
		}
	}
	if err != nil {
		return fmt.Errorf("%s: %q is not an address", want, host)
	}
	a := p.Addr()
	switch {
	case a.Zone() != "":
		return fmt.Errorf("IPv6 zones are not allowed")
	case v6 && a.Is4In6():
		return fmt.Errorf("write IPv4-mapped address %s as plain IPv4", a)
	case v6 != a.Is6():
		return fmt.Errorf("%s (IPv6 goes in brackets, IPv4 does not)", want)
	}
	ns.prefix = p
	return nil
}

// parsePorts parses N, LO-HI or *, with every port in 1..65535.
func parsePorts(s string) (uint16, uint16, error) {
	if s == "*" {
		return 1, 65535, nil
	}
	los, his, isRange := strings.Cut(s, "-")
	lo, err := parsePort(los)
	if err != nil {
		return 0, 0, err
	}
	if !isRange {
		return lo, lo, nil
	}
	hi, err := parsePort(his)
	if err != nil {
		return 0, 0, err
	}
	if lo > hi {
		return 0, 0, fmt.Errorf("port range %d-%d is reversed", lo, hi)
	}
	return lo, hi, nil
}

func parsePort(s string) (uint16, error) {
	if s == "" || len(s) > 5 {
		return 0, fmt.Errorf("port %q must be 1-65535, LO-HI or *", s)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("port %q must be 1-65535, LO-HI or *", s)
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %q must be 1-65535, LO-HI or *", s)
	}
	return uint16(n), nil
}

// String is the canonical form, which parseNet accepts and returns unchanged.
func (ns netScope) String() string {
	var host string
	switch {
	case ns.any:
		host = "*"
	case ns.isAddr:
		host = ns.prefix.Addr().String()
	default:
		host = ns.prefix.String()
	}
	if ns.prefix.Addr().Is6() {
		host = "[" + host + "]"
	}
	var port string
	switch {
	case ns.lo == 1 && ns.hi == 65535:
		port = "*"
	case ns.lo == ns.hi:
		port = strconv.Itoa(int(ns.lo))
	default:
		port = strconv.Itoa(int(ns.lo)) + "-" + strconv.Itoa(int(ns.hi))
	}
	return host + ":" + port
}

func (ns netScope) matches(ip netip.Addr, port uint16) bool {
	if port < ns.lo || port > ns.hi {
		return false
	}
	return ns.any || ns.prefix.Contains(ip)
}

// covers reports whether every address and port in o is in ns.
func (ns netScope) covers(o netScope) bool {
	if o.lo < ns.lo || o.hi > ns.hi {
		return false
	}
	switch {
	case ns.any:
		return true
	case o.any:
		return false
	}
	return ns.prefix.Bits() <= o.prefix.Bits() && ns.prefix.Contains(o.prefix.Addr())
}

// MatchAddr reports whether a net capability allows ip:port. IPv4-mapped
// IPv6 addresses are matched as IPv4, and zones are ignored, because the
// kernel hands both forms to the enforcer for the same peer.
func (c Cap) MatchAddr(ip netip.Addr, port uint16) bool {
	if c.Domain != "net" || !ip.IsValid() {
		return false
	}
	ns, err := parseNet(c.Scope)
	if err != nil {
		return false
	}
	return ns.matches(ip.Unmap().WithZone(""), port)
}
