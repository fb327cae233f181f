package supervise

import (
	"sync"

	"github.com/coconut-os/coconut/internal/capability"
	"github.com/coconut-os/coconut/internal/policy"
)

// testDecider is the tests' Decider: the real policy (policy.Decide on
// the bundle and the System baseline, as the daemon's enforcer decides)
// with its events kept in memory. Set swaps the bundle under a write
// lock, so no decision after Set returns uses the old one.
type testDecider struct {
	mu     sync.RWMutex
	caps   []capability.Cap
	policy auditPolicy

	evmu   sync.Mutex
	events []Event
}

// newTestDecider returns a decider over caps with the default audit policy.
func newTestDecider(caps []capability.Cap) *testDecider {
	return &testDecider{caps: caps}
}

// Set replaces the bundle.
func (d *testDecider) Set(caps []capability.Cap) {
	d.mu.Lock()
	d.caps = caps
	d.mu.Unlock()
}

// Allow implements Decider with policy.Decide.
func (d *testDecider) Allow(_ uint64, path string, access Access) bool {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return policy.Decide(policy.Bundle{Caps: d.caps, Base: policy.System}, policy.File{Path: path, Access: policy.Access(access)}).Allow
}

// AllowUnix implements UnixDecider with policy.Decide.
func (d *testDecider) AllowUnix(_ uint64, addr string) bool {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return policy.Decide(policy.Bundle{Caps: d.caps}, policy.Unix{Addr: addr}).Allow
}

// AuditAllowed implements Decider with the default policy.
func (d *testDecider) AuditAllowed(ev Event) bool { return d.policy.Want(ev) }

// Record implements Decider.
func (d *testDecider) Record(ev Event) error {
	d.evmu.Lock()
	d.events = append(d.events, ev)
	d.evmu.Unlock()
	return nil
}

// Events returns a copy of what was recorded.
func (d *testDecider) Events() []Event {
	d.evmu.Lock()
	defer d.evmu.Unlock()
	return append([]Event(nil), d.events...)
}

// auditPolicy is the default audit policy for allowed calls: every exec
// and every write, and the first read of each path. The zero value is
// ready.
type auditPolicy struct {
	mu   sync.Mutex
	seen map[string]bool
}

// maxSeen bounds the memory of paths already read; past it the set starts
// over, which records more, never less.
const maxSeen = 1 << 16

// Want reports whether ev must be recorded.
func (p *auditPolicy) Want(ev Event) bool {
	if !ev.Allowed || ev.Access&(Write|Exec) != 0 {
		return true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.seen == nil || len(p.seen) >= maxSeen {
		p.seen = map[string]bool{}
	}
	if p.seen[ev.Path] {
		return false
	}
	p.seen[ev.Path] = true
	return true
}
