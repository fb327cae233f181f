package netguard

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"

	"github.com/coconut-os/coconut/internal/capability"
	"github.com/coconut-os/coconut/internal/policy"
)

// afUnix is NG_AF_UNIX: the family of a Unix socket event.
const afUnix uint8 = 1

// unixPathLen is NG_UNIX_PATH, sun_path's size.
const unixPathLen = 108

// unixSet is what one policy holds in unix_rules: the allowed Unix socket
// addresses in kernel form (a pathname, or NUL + an abstract name).
type unixSet map[string]struct{}

// compileUnix collects the net.connect:unix: capabilities of a bundle.
// Every other capability is compile's business (or nobody's).
func compileUnix(caps []capability.Cap) (unixSet, error) {
	addrs, err := policy.UnixSockets(caps)
	if err != nil {
		var re *policy.RuleError
		if errors.As(err, &re) {
			return nil, fmt.Errorf("%s: %w", re.Cap, ErrUnsupportedCap)
		}
		return nil, fmt.Errorf("%v: %w", err, ErrUnsupportedCap)
	}
	out := unixSet{}
	for _, addr := range addrs {
		if len(addr) > unixPathLen {
			return nil, fmt.Errorf("net.connect:unix:%s: %w", strings.Replace(addr, "\x00", "@", 1), ErrUnsupportedCap)
		}
		out[addr] = struct{}{}
	}
	return out, nil
}

// unixKey is the unix_rules key of addr in policy, laid out as the
// program builds it from a connect.
func unixKey(policy uint32, addr string) netguardUnixKey {
	k := netguardUnixKey{Policy: policy, Len: uint32(len(addr))}
	copy(k.Path[:], addr)
	return k
}

// setUnix writes want as policy id's Unix allowlist: new entries first,
// then the ones gone. The caller holds g.mu. On error the entries written
// so far are in live (for denyAll).
func (g *Guard) setUnix(id uint32, want unixSet, live unixSet) error {
	have := g.unix[id]
	one := uint8(1)
	for a := range want {
		if _, ok := have[a]; ok {
			continue
		}
		key := unixKey(id, a)
		if err := g.objs.UnixRules.Update(&key, &one, ebpf.UpdateAny); err != nil {
			return fmt.Errorf("write unix %s: %w", unixName(a), err)
		}
		live[a] = struct{}{}
	}
	for a := range have {
		if _, ok := want[a]; ok {
			continue
		}
		key := unixKey(id, a)
		if err := g.objs.UnixRules.Delete(&key); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("delete unix %s: %w", unixName(a), err)
		}
		delete(live, a)
	}
	return nil
}

// dropUnix deletes every Unix entry of a policy; it returns those it could
// not delete. The caller holds g.mu.
func (g *Guard) dropUnix(id uint32, live unixSet) (unixSet, error) {
	left := unixSet{}
	var errs []error
	for a := range live {
		key := unixKey(id, a)
		if err := g.objs.UnixRules.Delete(&key); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			left[a] = struct{}{}
			errs = append(errs, err)
		}
	}
	return left, errors.Join(errs...)
}

// unixName renders a kernel-form address as capabilities write it:
// "/path" or "@name". Bytes that are not printable ASCII are escaped, so
// an audit row never carries raw control bytes from an agent.
func unixName(addr string) string {
	s := addr
	if strings.HasPrefix(s, "\x00") {
		s = "@" + s[1:]
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			q := strconv.Quote(s)
			return q[1 : len(q)-1]
		}
	}
	return s
}
