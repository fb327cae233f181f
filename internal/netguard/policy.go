package netguard

import (
	"errors"
	"fmt"
	"slices"

	"github.com/cilium/ebpf"

	"github.com/coconut-os/coconut/internal/capability"
)

// SetPolicy makes policy id allow exactly the net.connect and net.bind
// capabilities in caps, net.connect:unix: ones included (other domains are
// ignored; nil denies everything, Unix sockets too).
// It is also how a grant or a revoke reaches the kernel: once it returns,
// every later call of every cgroup bound to id is decided by the new rules.
//
// Entries are written changed-or-new first, then the ones that are gone are
// deleted; because every entry carries folded ranges (see the package
// documentation) no moment of the update allows what neither policy allows.
// If a map update fails, SetPolicy deletes all of the policy's entries (so
// it denies everything) and returns an error wrapping ErrMapUpdate.
func (g *Guard) SetPolicy(id uint32, caps []capability.Cap) error {
	want, err := compile(caps)
	if err != nil {
		return fmt.Errorf("policy %d: %w", id, err)
	}
	wantUnix, err := compileUnix(caps) // unix.go
	if err != nil {
		return fmt.Errorf("policy %d: %w", id, err)
	}
	if n := len(want) + len(wantUnix); n > MaxRulesPerPolicy {
		return fmt.Errorf("policy %d: %d entries, at most %d: %w", id, n, MaxRulesPerPolicy, ErrTooManyRules)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return ErrClosed
	}
	have := g.policies[id]
	live := make(ruleSet, len(have)+len(want)) // entries now in the trie
	for k, v := range have {
		live[k] = v
	}
	liveUnix := unixSet{} // entries now in unix_rules
	for a := range g.unix[id] {
		liveUnix[a] = struct{}{}
	}
	for k, v := range want {
		if old, ok := have[k]; ok && slices.Equal(old, v) {
			continue
		}
		key, val := kernelKey(id, k), kernelValue(v)
		if err := g.objs.Rules.Update(&key, &val, ebpf.UpdateAny); err != nil {
			return g.denyAll(id, live, liveUnix, fmt.Errorf("write %v: %w", k.prefix, err))
		}
		live[k] = v
	}
	for k := range have {
		if _, ok := want[k]; ok {
			continue
		}
		key := kernelKey(id, k)
		if err := g.objs.Rules.Delete(&key); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return g.denyAll(id, live, liveUnix, fmt.Errorf("delete %v: %w", k.prefix, err))
		}
		delete(live, k)
	}
	if err := g.setUnix(id, wantUnix, liveUnix); err != nil {
		return g.denyAll(id, live, liveUnix, err)
	}
	g.policies[id] = want
	g.unix[id] = wantUnix
	return nil
}

// denyAll removes every entry of a policy after a failed update, leaving a
// policy that allows nothing (or, if deletes fail too, fewer entries; each
// remaining one is still a whole entry of the old or new policy).
func (g *Guard) denyAll(id uint32, live ruleSet, liveUnix unixSet, cause error) error {
	left := ruleSet{}
	for k, v := range live {
		key := kernelKey(id, k)
		if err := g.objs.Rules.Delete(&key); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			left[k] = v
		}
	}
	g.policies[id] = left
	leftUnix, _ := g.dropUnix(id, liveUnix)
	g.unix[id] = leftUnix
	return fmt.Errorf("policy %d: %w: %w (policy now denies everything but %d entries)",
		id, ErrMapUpdate, cause, len(left)+len(leftUnix))
}

// SetAuditConnect makes every allowed connect of policy id an Event with
// Allowed set (on), or records denies only (off, the default). The kernel
// refuses a connect whose event cannot be queued: nothing the policy asks
// to record happens unrecorded. Set it before binding cgroups to id.
func (g *Guard) SetAuditConnect(id uint32, on bool) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return ErrClosed
	}
	if _, ok := g.policies[id]; !ok {
		return fmt.Errorf("policy %d: %w", id, ErrUnknownPolicy)
	}
	if !on {
		if err := g.objs.PolicyFlags.Delete(&id); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("policy %d flags: %w: %w", id, ErrMapUpdate, err)
		}
		return nil
	}
	flags := uint32(flagAuditConnect)
	if err := g.objs.PolicyFlags.Update(&id, &flags, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("policy %d flags: %w: %w", id, ErrMapUpdate, err)
	}
	return nil
}

// RemovePolicy deletes a policy's entries. It refuses while a cgroup is
// bound to it.
func (g *Guard) RemovePolicy(id uint32) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return ErrClosed
	}
	if _, ok := g.policies[id]; !ok {
		return fmt.Errorf("policy %d: %w", id, ErrUnknownPolicy)
	}
	for cg, p := range g.bound {
		if p == id {
			return fmt.Errorf("policy %d (cgroup %d): %w", id, cg, ErrPolicyInUse)
		}
	}
	for k := range g.policies[id] {
		key := kernelKey(id, k)
		if err := g.objs.Rules.Delete(&key); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("policy %d: %w: %w", id, ErrMapUpdate, err)
		}
		delete(g.policies[id], k)
	}
	left, err := g.dropUnix(id, g.unix[id])
	g.unix[id] = left
	if err != nil {
		return fmt.Errorf("policy %d: %w: %w", id, ErrMapUpdate, err)
	}
	if err := g.objs.PolicyFlags.Delete(&id); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("policy %d flags: %w: %w", id, ErrMapUpdate, err)
	}
	delete(g.policies, id)
	delete(g.unix, id)
	return nil
}

// Bind puts the cgroup (its id as CgroupID returns it) under policy, which
// must have been set. Rebinding to another policy is one atomic map update.
// Bind before the cgroup's first process starts: an unbound cgroup passes.
func (g *Guard) Bind(cgroupID uint64, policy uint32) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return ErrClosed
	}
	if _, ok := g.policies[policy]; !ok {
		return fmt.Errorf("policy %d: %w", policy, ErrUnknownPolicy)
	}
	prev, wasBound := g.bound[cgroupID]
	if err := g.objs.Agents.Update(&cgroupID, &policy, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("bind cgroup %d: %w: %w", cgroupID, ErrMapUpdate, err)
	}
	g.bound[cgroupID] = policy
	if wasBound {
		return g.dropStale(prev)
	}
	return nil
}

// Unbind removes a cgroup's binding; its processes then pass untouched, so
// call it only once the cgroup is empty.
func (g *Guard) Unbind(cgroupID uint64) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return ErrClosed
	}
	if _, ok := g.bound[cgroupID]; !ok {
		return fmt.Errorf("cgroup %d: %w", cgroupID, ErrNotBound)
	}
	if err := g.objs.Agents.Delete(&cgroupID); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("unbind cgroup %d: %w: %w", cgroupID, ErrMapUpdate, err)
	}
	prev := g.bound[cgroupID]
	delete(g.bound, cgroupID)
	return g.dropStale(prev)
}
