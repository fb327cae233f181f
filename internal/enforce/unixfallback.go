package enforce

import (
	"fmt"

	pol "github.com/coconut-os/coconut/internal/policy"
)

// unixFallbackWhy is what the backend says of itself on a kernel without
// the network guard's Unix socket hooks.
const unixFallbackWhy = "Unix socket connects decided by the seccomp supervisor (no cgroup/connect_unix hooks: " +
	"Linux before 6.7, or COCONUT_UNIX_HOOKS=off): one notification per connect, sendto with an address, sendmsg and sendmmsg"

// requireUnixCheck fails the load when the guard runs without its Unix
// socket hooks and no supervisor can take their place: an agent that may
// connect any Unix socket can be handed an fd of any file (issue 3).
func (p *Portable) requireUnixCheck(byLSM bool) error {
	if p.guard.UnixHooks() || byLSM {
		return nil
	}
	if p.sup == nil {
		return fmt.Errorf("%w: portable: the network guard has no Unix socket hooks (cgroup/connect_unix needs Linux >= 6.7) "+
			"and the seccomp supervisor that replaces them is off (%s)", ErrUnavailable, p.supWhy)
	}
	p.trapUnix = true
	return nil
}

// UnixSockets says who checks the agents' Unix socket connects: the
// network guard, or the supervisor's fallback (false).
func (p *Portable) UnixSockets() (hooks bool, why string) {
	if p.trapUnix {
		return false, unixFallbackWhy
	}
	return true, "Unix socket connects decided by the network guard (cgroup/connect_unix, sendmsg_unix)"
}

// AllowUnix implements supervise.UnixDecider: the agent's current
// bundle's Unix sockets, the implicit ones included (the same set the
// guard's unix_rules map holds for it).
func (s *supervisor) AllowUnix(aid uint64, addr string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	a := s.agents[aid]
	return a != nil && pol.Decide(pol.Bundle{Caps: a.unix}, pol.Unix{Addr: addr}).Allow
}
