package netguard

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/coconut-os/coconut/internal/capability"
	"github.com/coconut-os/coconut/internal/policy"
)

// Kernel constants mirrored from bpf/include/netguard.h.
const (
	verbConnect uint8 = 0
	verbBind    uint8 = 1
	verbCreate  uint8 = 2

	flagAuditConnect = 1 // NG_FLAG_AUDIT_CONNECT
	evAllowed        = 1 // NG_EV_ALLOWED

	afInet  uint8 = 2
	afInet6 uint8 = 10

	maxRanges = 32 // NG_MAX_RANGES
	// keyFixedBits is the part of an LPM key matched exactly: policy, verb,
	// family and pad.
	keyFixedBits = 64
)

// MaxRulesPerPolicy bounds the trie entries one policy may use, so that one
// manifest cannot fill the shared trie (65536 entries) and folding stays
// cheap (quadratic in the prefixes of a partition).
const MaxRulesPerPolicy = 4096

// ruleKey is a trie entry of one policy, before the policy id is added.
type ruleKey struct {
	verb   uint8
	prefix netip.Prefix // masked; IPv4 as IPv4
}

type portRange struct{ lo, hi uint16 }

// ruleSet is what one policy holds in the trie: folded, merged ranges per
// prefix.
type ruleSet map[ruleKey][]portRange

// compile turns a bundle's policy.NetRules into trie entries: exact, not
// coarser, since the longest-prefix match over folded ranges (allows)
// answers as policy.Decide does (TestConformanceRules, and the kernel in
// TestConformanceKernel). Capabilities outside the net
// domain are not this package's business and are skipped; a net capability
// that is not connect or bind, or whose scope does not parse, is an error
// (fail closed: a rule we do not understand is not silently dropped).
func compile(caps []capability.Cap) (ruleSet, error) {
	rules, err := policy.NetRules(caps) // Unix sockets: compileUnix
	if err != nil {
		var re *policy.RuleError
		if errors.As(err, &re) {
			return nil, fmt.Errorf("%s: %w: %w", re.Cap, ErrUnsupportedCap, re.Err)
		}
		return nil, err
	}
	raw := map[ruleKey][]portRange{}
	for _, nr := range rules {
		c, r := nr.Cap, nr.NetRule
		var verb uint8
		switch nr.Verb {
		case "connect":
			verb = verbConnect
		case "bind":
			verb = verbBind
		default:
			return nil, fmt.Errorf("%s: %w", c, ErrUnsupportedCap)
		}
		if r.Lo == 0 || r.Lo > r.Hi {
			return nil, fmt.Errorf("%s: ports %d-%d: %w", c, r.Lo, r.Hi, ErrUnsupportedCap)
		}
		pr := portRange{r.Lo, r.Hi}
		var prefixes []netip.Prefix
		if r.Any {
			prefixes = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}
		} else {
			p := r.Prefix
			if !p.IsValid() || p.Addr().Zone() != "" || p.Addr().Is4In6() {
				return nil, fmt.Errorf("%s: prefix %v: %w", c, p, ErrUnsupportedCap)
			}
			prefixes = []netip.Prefix{p.Masked()}
		}
		for _, p := range prefixes {
			k := ruleKey{verb, p}
			raw[k] = append(raw[k], pr)
		}
	}
	if len(raw) > MaxRulesPerPolicy {
		return nil, fmt.Errorf("%d entries, at most %d: %w", len(raw), MaxRulesPerPolicy, ErrTooManyRules)
	}
	out := make(ruleSet, len(raw))
	for k := range raw {
		// Fold: an address under k is allowed every port any prefix
		// containing k allows, so k's entry must carry all of them.
		var all []portRange
		for q, rs := range raw {
			if q.verb == k.verb && q.prefix.Addr().Is4() == k.prefix.Addr().Is4() &&
				q.prefix.Bits() <= k.prefix.Bits() && q.prefix.Contains(k.prefix.Addr()) {
				all = append(all, rs...)
			}
		}
		merged := mergeRanges(all)
		if len(merged) > maxRanges {
			return nil, fmt.Errorf("%v (%s): %d disjoint port ranges, at most %d: %w",
				k.prefix, verbName(k.verb), len(merged), maxRanges, ErrTooManyRanges)
		}
		out[k] = merged
	}
	return out, nil
}

// mergeRanges sorts and coalesces overlapping or adjacent ranges.
func mergeRanges(in []portRange) []portRange {
	rs := slices.Clone(in)
	slices.SortFunc(rs, func(a, b portRange) int { return int(a.lo) - int(b.lo) })
	var out []portRange
	for _, r := range rs {
		if n := len(out); n > 0 && int(r.lo) <= int(out[n-1].hi)+1 {
			out[n-1].hi = max(out[n-1].hi, r.hi)
			continue
		}
		out = append(out, r)
	}
	return out
}

// allows answers like the kernel program: longest matching prefix of the
// verb and family, then its ranges. Tests compare it with
// capability.MatchAddr.
func (s ruleSet) allows(verb uint8, ip netip.Addr, port uint16) bool {
	ip = ip.Unmap().WithZone("")
	best, found := ruleKey{}, false
	for k := range s {
		if k.verb == verb && k.prefix.Contains(ip) && (!found || k.prefix.Bits() > best.prefix.Bits()) {
			best, found = k, true
		}
	}
	if !found {
		return false
	}
	for _, r := range s[best] {
		if port >= r.lo && port <= r.hi {
			return true
		}
	}
	return false
}

// kernelKey is the trie key of k in policy.
func kernelKey(policy uint32, k ruleKey) netguardLpmKey {
	key := netguardLpmKey{Policy: policy, Verb: k.verb}
	a := k.prefix.Addr()
	if a.Is4() {
		key.Family = afInet
		b := a.As4()
		copy(key.Addr[:], b[:])
	} else {
		key.Family = afInet6
		b := a.As16()
		copy(key.Addr[:], b[:])
	}
	key.Prefixlen = uint32(keyFixedBits + k.prefix.Bits())
	return key
}

func kernelValue(rs []portRange) netguardPortRanges {
	var v netguardPortRanges
	v.N = uint32(len(rs))
	for i, r := range rs {
		v.R[i].Lo, v.R[i].Hi = r.lo, r.hi
	}
	return v
}

func verbName(v uint8) string {
	switch v {
	case verbConnect:
		return "connect"
	case verbBind:
		return "bind"
	case verbCreate:
		return "create"
	}
	return fmt.Sprintf("verb(%d)", v)
}
