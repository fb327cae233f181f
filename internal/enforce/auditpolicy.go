package enforce

import (
	"sync"

	"github.com/coconut-os/coconut/internal/manifest"
	"github.com/coconut-os/coconut/internal/supervise"
)

// Audit levels of a manifest's `audit:` policy.
const (
	auditAll   = "all"
	auditFirst = "first"
	auditNone  = "none"
)

// DefaultAudit is the policy of an agent whose manifest says nothing (and
// of `coconut agent run`): every exec, write and connect, the first read
// of each path.
var DefaultAudit = manifest.AuditPolicy{Reads: auditFirst, Writes: auditAll, Exec: auditAll, Connect: auditAll}

// auditPolicy decides which allowed uses of one agent are recorded. Denies
// are always recorded. "first" remembers what was recorded, per kind of
// use; past maxSeen objects the memory starts over, which records more,
// never less.
type auditPolicy struct {
	p manifest.AuditPolicy

	mu   sync.Mutex
	seen map[string]bool // kind + "\x00" + object
}

const maxSeen = 1 << 16

// newAuditPolicy fills the levels a policy leaves empty with the default.
func newAuditPolicy(p manifest.AuditPolicy) *auditPolicy {
	fill := func(v *string, def string) {
		if *v == "" {
			*v = def
		}
	}
	fill(&p.Reads, DefaultAudit.Reads)
	fill(&p.Writes, DefaultAudit.Writes)
	fill(&p.Exec, DefaultAudit.Exec)
	fill(&p.Connect, DefaultAudit.Connect)
	return &auditPolicy{p: p}
}

// Want implements the supervisor's question: must this file event be
// recorded? A call needing several rights is recorded at the strictest
// level among them.
func (a *auditPolicy) Want(ev supervise.Event) bool {
	if !ev.Allowed {
		return true
	}
	level, kind := a.levelOf(ev)
	return a.decide(level, kind, ev.Path)
}

// Unrecorded undoes Want's "first" mark for an event whose row could not
// be written: that call is refused, and the next one must be recorded.
func (a *auditPolicy) Unrecorded(ev supervise.Event) {
	if level, kind := a.levelOf(ev); level == auditFirst {
		a.forget(kind, ev.Path)
	}
}

func (a *auditPolicy) forget(kind, object string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.seen, kind+"\x00"+object)
}

// levelOf is the strictest audit level among the rights ev needs.
func (a *auditPolicy) levelOf(ev supervise.Event) (level, kind string) {
	level = auditNone
	for _, k := range []struct {
		bit   supervise.Access
		level string
		kind  string
	}{{supervise.Read, a.p.Reads, "read"}, {supervise.Write, a.p.Writes, "write"}, {supervise.Exec, a.p.Exec, "exec"}} {
		if ev.Access&k.bit != 0 && stricter(k.level, level) {
			level, kind = k.level, k.kind
		}
	}
	return level, kind
}

// wantConnect: must this allowed connect (object "tcp ADDR:PORT") be
// recorded?
func (a *auditPolicy) wantConnect(object string) bool {
	return a.decide(a.p.Connect, "connect", object)
}

// recordsConnects says whether the kernel must report allowed connects.
func (a *auditPolicy) recordsConnects() bool { return a.p.Connect != auditNone }

func (a *auditPolicy) decide(level, kind, object string) bool {
	switch level {
	case auditAll:
		return true
	case auditFirst:
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.seen == nil || len(a.seen) >= maxSeen {
			a.seen = map[string]bool{}
		}
		key := kind + "\x00" + object
		if a.seen[key] {
			return false
		}
		a.seen[key] = true
		return true
	case auditNone:
		return false
	}
	return true // a level this code does not know: record (fail closed)
}

// stricter orders levels: all > first > none.
func stricter(a, b string) bool { return rank(a) > rank(b) }

func rank(l string) int {
	switch l {
	case auditAll:
		return 2
	case auditFirst:
		return 1
	case auditNone:
		return 0
	}
	return 3 // unknown: strictest
}
