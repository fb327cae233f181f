package policy

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/coconut-os/coconut/internal/capability"
)

// Access is what a file operation needs on one object; an operation may
// need several bits. The values are supervise.Access's.
type Access uint8

const (
	Read  Access = 1 << iota // fs.read
	Write                    // fs.write: create, change, remove, rename, link
	Exec                     // fs.exec
)

// Bundle is what an agent holds: its capabilities (~ expanded) and the
// baseline beside them; for a Grant also its ceiling (nil: its
// capabilities are its ceiling) and, when another agent grants, that
// agent's delegation scope (GrantScopes of its capabilities).
type Bundle struct {
	Caps    []capability.Cap
	Base    Baseline
	Ceiling []capability.Cap
	// ByAgent: the grant comes from an agent, bounded by Scope; a user's
	// grant is bounded by the ceiling alone.
	ByAgent bool
	Scope   []capability.Cap
}

// Op is one operation to decide: File, Net, Unix, Model, Present or Grant.
type Op interface{ op() }

// File is an access to the real file at Path (absolute and clean, links
// resolved by the mechanism).
type File struct {
	Path   string
	Access Access
}

// Net is a connect or bind (Verb "connect" or "bind") to Addr:Port.
type Net struct {
	Verb string
	Addr netip.Addr
	Port uint16
}

// Unix is a connect or send to a Unix socket address in kernel form: a
// pathname, or NUL and an abstract name.
type Unix struct{ Addr string }

// Model is an inference request for a concrete model name.
type Model struct{ Name string }

// Present is an application capability (x.vendor.name[:scope]) or an
// inference capability presented for an operation the kernel does not
// see (agent_cap_present).
type Present struct{ Cap capability.Cap }

// Grant is a grant of Cap to a running agent: it must lie within the
// agent's ceiling (its kernel floor cannot be widened) and, from an agent,
// within that agent's cap.grant scope.
type Grant struct{ Cap capability.Cap }

func (Grant) op()   {}
func (File) op()    {}
func (Net) op()     {}
func (Unix) op()    {}
func (Model) op()   {}
func (Present) op() {}

// Verdict is Decide's answer. Missing names the capability a denied
// operation lacks, in capability syntax ("fs.write:/srv/x").
type Verdict struct {
	Allow   bool
	Missing string
}

func allow() Verdict              { return Verdict{Allow: true} }
func deny(missing string) Verdict { return Verdict{Missing: missing} }

// Decide answers whether b allows op. Anything it does not understand is
// denied.
func Decide(b Bundle, op Op) Verdict {
	switch o := op.(type) {
	case File:
		return decideFile(b, o)
	case Net:
		if (o.Verb == "connect" || o.Verb == "bind") && o.Addr.IsValid() {
			for _, c := range b.Caps {
				if c.Domain == "net" && c.Verb == o.Verb && !c.IsUnix() && c.MatchAddr(o.Addr, o.Port) {
					return allow()
				}
			}
		}
		return deny("net." + o.Verb + ":" + netip.AddrPortFrom(o.Addr.Unmap().WithZone(""), o.Port).String())
	case Unix:
		if o.Addr != "" {
			for _, c := range b.Caps {
				if a, ok := c.UnixSocket(); ok && a == o.Addr {
					return allow()
				}
			}
		}
		return deny("net.connect:unix:" + strings.Replace(o.Addr, "\x00", "@", 1))
	case Model:
		for _, c := range b.Caps {
			if c.MatchModel(o.Name) {
				return allow()
			}
		}
		return deny("inference:model=" + o.Name)
	case Grant:
		ceiling := b.Ceiling
		if ceiling == nil {
			ceiling = b.Caps
		}
		if (b.ByAgent && !Within(b.Scope, o.Cap)) || !Within(ceiling, o.Cap) {
			return deny(o.Cap.String())
		}
		return allow()
	case Present:
		if !o.Cap.KernelEnforced() && Within(b.Caps, o.Cap) {
			return allow()
		}
		return deny(o.Cap.String())
	}
	return deny("")
}

// decideFile: read is implied by write and exec (a write scope is
// read-write, executing a file reads it), as in the Landlock floor. The
// baseline's exec entries count as reads: an exec is decided on the
// bundle alone, since the baseline's exec entries (the ELF interpreter)
// are there for the kernel's own open inside every dynamic execve, a
// direct execve of the interpreter is the agent's own choice, and
// `ld.so ./file` runs any readable file.
func decideFile(b Bundle, f File) Verdict {
	if f.Access == 0 || f.Access&^(Read|Write|Exec) != 0 {
		return deny("")
	}
	if f.Access&Read != 0 && !under(f.Path, b.Base.Read) && !under(f.Path, b.Base.Write) && !under(f.Path, b.Base.Exec) &&
		!matchFile(b.Caps, "read", f.Path) && !matchFile(b.Caps, "write", f.Path) && !matchFile(b.Caps, "exec", f.Path) {
		return deny("fs.read:" + f.Path)
	}
	if f.Access&Write != 0 && !under(f.Path, b.Base.Write) && !matchFile(b.Caps, "write", f.Path) {
		return deny("fs.write:" + f.Path)
	}
	if f.Access&Exec != 0 && !matchFile(b.Caps, "exec", f.Path) {
		return deny("fs.exec:" + f.Path)
	}
	return allow()
}

func matchFile(caps []capability.Cap, verb, path string) bool {
	for _, c := range caps {
		if c.Domain == "fs" && c.Verb == verb && c.MatchPath(path) {
			return true
		}
	}
	return false
}

// String writes v as "allow" or "deny MISSING", for test messages.
func (v Verdict) String() string {
	if v.Allow {
		return "allow"
	}
	return "deny " + strconv.Quote(v.Missing)
}
