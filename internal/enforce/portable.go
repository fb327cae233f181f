package enforce

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"

	"github.com/coconut-os/coconut/internal/bpflsm"
	"github.com/coconut-os/coconut/internal/capability"
	"github.com/coconut-os/coconut/internal/launch"
	"github.com/coconut-os/coconut/internal/netguard"
	pol "github.com/coconut-os/coconut/internal/policy"
	"github.com/coconut-os/coconut/internal/supervise"
)

// Portable is the backend for any kernel with Landlock and cgroup BPF: the
// Landlock floor (applied by the trampoline) and the network guard.
type Portable struct {
	guard  *netguard.Guard
	pinWhy string // how the guard outlives the daemon, or why it does not
	events chan Event
	sup    *supervisor // nil: the seccomp supervisor is off (supWhy says why)
	supWhy string
	// trapUnix: the guard has no Unix socket hooks (unixfallback.go), so
	// every agent's filter traps connect and send for the supervisor.
	trapUnix bool

	evmu     sync.RWMutex // senders hold it to read; close takes it to write
	evClosed bool

	mu       sync.Mutex
	policies map[string]*policy // by policy key
	agents   map[uint64]bound   // by AID
	nextID   uint32
	audits   map[uint64]*auditPolicy     // by cgroup id: which allowed connects are recorded
	floors   map[uint64][]capability.Cap // by AID, static agents and all without the supervisor: the bundle its floor was built from
}

type policy struct {
	id   uint32
	caps string // canonical net caps, to tell a class whose bundle changed
	refs int
}

type bound struct {
	cgroupID uint64
	key      string
}

// Config is what a backend needs to load.
type Config struct {
	CgroupRoot string // coconut's cgroup subtree
	// HolderSocket is where the listener holder listens (in the state
	// directory); "" turns the seccomp supervisor off.
	HolderSocket string
	// Self is the binary the holder runs as (the trampoline).
	Self string
	// NoUnixHooks leaves the network guard's Unix socket programs out
	// even where the kernel has them, so the supervisor's fallback
	// (unixfallback.go) runs as on a kernel before 6.7: a test and
	// diagnostic switch (coconutd: COCONUT_UNIX_HOOKS=off).
	NoUnixHooks bool
	// unixByLSM: Unix socket addresses are checked by the bpf-lsm
	// programs, so a guard without its Unix hooks needs no supervisor.
	unixByLSM bool
}

// LoadPortable loads the network guard on coconut's cgroup subtree. Both
// halves must work: without Landlock or cgroup BPF, agents do not start.
// The guard is pinned in bpffs (netguard.Open), so the network stays
// guarded while no daemon runs and a restarted daemon takes it over; only
// when bpffs cannot be used is it loaded unpinned, and PinStatus says so.
// The seccomp supervisor is on when cfg names a holder socket and the
// holder starts; if it does not, agents run under the floor and the guard
// only, and Supervising says why.
func LoadPortable(cfg Config) (*Portable, error) {
	cgroupRoot := cfg.CgroupRoot
	if abi := launch.LandlockABI(); abi < 1 {
		return nil, fmt.Errorf("%w: portable: the kernel has no Landlock (enable CONFIG_SECURITY_LANDLOCK and landlock in lsm=)", ErrUnavailable)
	}
	var g *netguard.Guard
	pinWhy := ""
	pins, pinErr := netguard.PinDir(cgroupRoot)
	var err error
	// Without the Unix socket hooks the guard loads its inet programs
	// only, and the supervisor must check Unix addresses: only then is
	// the fallback asked for.
	gopts := netguard.Options{AllowNoUnixHooks: cfg.HolderSocket != "" || cfg.unixByLSM, NoUnixHooks: cfg.NoUnixHooks}
	if pinErr == nil {
		if g, err = netguard.OpenOptions(cgroupRoot, pins, gopts); err != nil {
			// Pins that exist but cannot be taken over still guard the
			// agents: do not stack a second, unpinned guard beside them.
			return nil, fmt.Errorf("%w: portable: cgroup BPF network guard: %v", ErrUnavailable, err)
		}
		pinWhy = "pinned in " + pins + ": the network stays guarded while coconutd is down"
	} else {
		if g, err = netguard.LoadOptions(cgroupRoot, gopts); err != nil {
			return nil, fmt.Errorf("%w: portable: cgroup BPF network guard: %v", ErrUnavailable, err)
		}
		pinWhy = fmt.Sprintf("not pinned (%v): the network is unguarded while coconutd is down", pinErr)
	}
	p := &Portable{guard: g, pinWhy: pinWhy, events: make(chan Event, 4096), policies: map[string]*policy{}, agents: map[uint64]bound{},
		audits: map[uint64]*auditPolicy{}, floors: map[uint64][]capability.Cap{}, nextID: g.MaxPolicyID()}
	switch {
	case cfg.HolderSocket == "":
		p.supWhy = "seccomp supervisor turned off"
	default:
		if p.sup, err = newSupervisor(p, cfg.HolderSocket, cfg.Self); err != nil {
			p.supWhy = fmt.Sprintf("seccomp supervisor off: %v", err)
			p.sup = nil
		}
	}
	if err := p.requireUnixCheck(cfg.unixByLSM); err != nil {
		if p.sup != nil {
			p.sup.close()
		}
		g.Close()
		return nil, err
	}
	go p.forward()
	return p, nil
}

// PinStatus says whether the network guard outlives the daemon.
func (p *Portable) PinStatus() string { return p.pinWhy }

// Uninstall removes the network guard a daemon for cgroupRoot left
// pinned: its programs detach. Only for a clean uninstall, once no agent
// of that subtree runs (they would lose network enforcement).
func Uninstall(cgroupRoot string) error {
	pins, err := netguard.PinDir(cgroupRoot)
	if err != nil {
		return err
	}
	// The bpf-lsm backend's pins, beside the guard's.
	return errors.Join(netguard.Uninstall(pins), bpflsm.Uninstall(bpflsm.PinDir(pins)))
}

// Supervising implements Supervisor.
func (p *Portable) Supervising() (bool, string) {
	if p.sup == nil {
		return false, p.supWhy
	}
	if p.trapUnix {
		return true, "seccomp supervisor on; " + unixFallbackWhy
	}
	return true, "seccomp supervisor on"
}

// Supervise implements Supervisor.
func (p *Portable) Supervise(aid uint64, conn *os.File, measured []*os.File) error {
	if p.sup == nil {
		return errors.New(p.supWhy)
	}
	return p.sup.Supervise(aid, conn, measured)
}

// Resume implements Supervisor.
func (p *Portable) Resume(aid uint64) error {
	if p.sup == nil {
		return ErrNotHeld
	}
	return p.sup.Resume(aid)
}

// AnswerRecorded implements Journaled.
func (p *Portable) AnswerRecorded(aid, id uint64, errno int) bool {
	return p.sup != nil && p.sup.AnswerRecorded(aid, id, errno)
}

// StillAllowed implements Journaled.
func (p *Portable) StillAllowed(aid uint64, path string, access supervise.Access) bool {
	return p.sup != nil && p.sup.StillAllowed(aid, path, access)
}

// Supervised implements Supervisor.
func (p *Portable) Supervised(aid uint64) bool { return p.sup != nil && p.sup.Supervised(aid) }

// send delivers an event unless the channel is closed.
func (p *Portable) send(ev Event) error {
	p.evmu.RLock()
	defer p.evmu.RUnlock()
	if p.evClosed {
		return errors.New("enforcer closed")
	}
	p.events <- ev
	return nil
}

// Name implements Enforcer.
func (p *Portable) Name() string { return "portable" }

// Rights implements Enforcer.
func (p *Portable) Rights() []string {
	r := append(launch.FloorRights(), "netguard.connect", "netguard.sendmsg", "netguard.bind", "netguard.sock_create")
	if p.trapUnix {
		r = append(r, "supervisor.connect_unix", "supervisor.sendmsg_unix")
	} else {
		r = append(r, "netguard.connect_unix", "netguard.sendmsg_unix")
	}
	if p.sup != nil {
		r = append(r, "supervisor.open", "supervisor.exec", "supervisor.link", "seccomp.deny")
	}
	return r
}

// Bind implements Enforcer: the agent's class shares one kernel policy.
func (p *Portable) Bind(a Agent) (fl *launch.Floor, err error) {
	var netCaps []capability.Cap
	for _, c := range a.Caps {
		if c.Domain == "net" {
			netCaps = append(netCaps, c)
		}
	}
	audit := newAuditPolicy(a.Audit)
	p.mu.Lock()
	defer p.mu.Unlock()
	// Agents of one policy key share rules only while their bundles (and
	// whether their connects are recorded) agree; a bundle changed by a
	// grant gets a policy of its own.
	pk := policyKey(a.Policy, audit, netCaps)
	pol, err := p.policyFor(pk, audit, netCaps)
	if err != nil {
		return nil, fmt.Errorf("network policy for agent %d: %w", a.AID, err)
	}
	if err := p.guard.Bind(a.CgroupID, pol.id); err != nil {
		return nil, fmt.Errorf("bind agent %d to its network policy: %w", a.AID, err)
	}
	pol.refs++
	p.agents[a.AID] = bound{cgroupID: a.CgroupID, key: pk}
	p.audits[a.CgroupID] = audit
	if p.sup != nil {
		p.sup.set(a)
	}
	ceiling := a.Ceiling
	if ceiling == nil {
		ceiling = a.Caps
	}
	defer func() {
		if fl != nil {
			fl.TrapUnix = p.trapUnix
		}
	}()
	if p.sup == nil || a.Static {
		// Without the supervisor nothing narrows file access below the
		// floor (and in static mode nothing narrows reads), so a floor
		// built from the ceiling would let the agent use everything it
		// might later be granted: the floor is the bundle, and Update
		// refuses file grants beyond it.
		ceiling = a.Caps
		p.floors[a.AID] = slices.Clone(a.Caps)
	}
	return Floor(ceiling), nil
}

// beyondFloor names the first file capability of caps that the agent's
// spawn-time floor does not cover ("" if none): what a grant cannot make
// effective while no supervisor runs.
func beyondFloor(floor, caps []capability.Cap) string {
	for _, c := range caps {
		if c.Domain != "fs" {
			continue
		}
		if !pol.Within(floor, c) {
			return c.String()
		}
	}
	return ""
}

// Update implements Enforcer: the agent moves to the policy of its new
// bundle in one map update (the cgroup is never unbound, which would leave
// it unguarded), then the old policy is dropped if no one uses it.
func (p *Portable) Update(a Agent) error {
	var netCaps []capability.Cap
	for _, c := range a.Caps {
		if c.Domain == "net" {
			netCaps = append(netCaps, c)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	old, ok := p.agents[a.AID]
	if !ok {
		return fmt.Errorf("agent %d is not bound", a.AID)
	}
	if floor, ok := p.floors[a.AID]; ok {
		if c := beyondFloor(floor, a.Caps); c != "" {
			why := "with enforcement: static"
			if p.sup == nil {
				why = "without the seccomp supervisor (" + p.supWhy + ")"
			}
			return fmt.Errorf("%w: %s: %s the agent's kernel floor is its spawn-time bundle; respawn it to widen file access", ErrBeyondCeiling, c, why)
		}
	}
	if p.sup != nil {
		a.CgroupID = old.cgroupID
		p.sup.set(a)
	}
	audit := p.audits[old.cgroupID]
	if audit == nil {
		audit = newAuditPolicy(a.Audit)
	}
	pk := policyKey(a.Policy, audit, netCaps)
	if pk == old.key {
		return nil
	}
	pol, err := p.policyFor(pk, audit, netCaps)
	if err != nil {
		return fmt.Errorf("network policy for agent %d: %w", a.AID, err)
	}
	if err := p.guard.Bind(a.CgroupID, pol.id); err != nil {
		return fmt.Errorf("rebind agent %d: %w", a.AID, err)
	}
	pol.refs++
	p.agents[a.AID] = bound{cgroupID: a.CgroupID, key: pk}
	if prev := p.policies[old.key]; prev != nil {
		if prev.refs--; prev.refs <= 0 {
			delete(p.policies, old.key)
			return p.guard.RemovePolicy(prev.id)
		}
	}
	return nil
}

// Unbind implements Enforcer.
func (p *Portable) Unbind(aid uint64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	b, ok := p.agents[aid]
	if !ok {
		return nil
	}
	delete(p.agents, aid)
	delete(p.audits, b.cgroupID)
	delete(p.floors, aid)
	err := p.guard.Unbind(b.cgroupID)
	if p.sup != nil {
		if serr := p.sup.unbind(aid); err == nil {
			err = serr
		}
	}
	if pol := p.policies[b.key]; pol != nil {
		if pol.refs--; pol.refs <= 0 {
			delete(p.policies, b.key)
			if rerr := p.guard.RemovePolicy(pol.id); err == nil {
				err = rerr
			}
		}
	}
	return err
}

// Events implements Enforcer.
func (p *Portable) Events() <-chan Event { return p.events }

// Counters implements Enforcer.
func (p *Portable) Counters() (Counters, error) {
	d, full, err := p.guard.Counters()
	c := Counters{KernelDenies: d, RingbufFull: full, BySource: map[string]uint64{"netguard": d}}
	if p.sup != nil {
		s := p.sup.denies.Load()
		c.KernelDenies += s
		c.BySource["supervisor"] = s
	}
	return c, err
}

// Pending implements Pender: network guard events not yet recorded (the
// guard keeps each until acknowledged), a supervisor event on its way to
// Events, or any event not yet taken from it.
func (p *Portable) Pending() bool {
	return p.guard.Pending() || len(p.events) > 0 || (p.sup != nil && p.sup.sending.Load() > 0)
}

// Close implements Enforcer: a pinned guard stays attached (its agents
// stay guarded until the next daemon reopens it), an unpinned one detaches;
// the supervisors stop, and the holder keeps their listeners for the next
// daemon.
func (p *Portable) Close() error {
	if p.sup != nil {
		p.sup.close()
	}
	return p.guard.Close()
}

func (p *Portable) forward() {
	defer func() {
		p.evmu.Lock()
		p.evClosed = true
		close(p.events)
		p.evmu.Unlock()
	}()
	for ev := range p.guard.Events() {
		p.forwardOne(ev)
	}
}

// forwardOne turns one network guard event into an Event; the consumer
// acknowledges it to the guard once its row is durable.
func (p *Portable) forwardOne(ev netguard.Event) {
	proto := "tcp"
	if ev.Protocol == 17 {
		proto = "udp"
	}
	obj := netObject(proto, ev.Addr, ev.Port)
	cap := "net." + ev.Verb
	if ev.Op == netguard.OpSockCreate {
		obj = fmt.Sprintf("socket family=%d type=%d protocol=%d", ev.Family, ev.Type, ev.Protocol)
		cap = "net.socket"
	}
	if name := ev.UnixName(); name != "" {
		// A Unix socket outside the agent's allowlist (issue 3: fd
		// passing): "unix /path" or "unix @abstract".
		obj = "unix " + name
	}
	if ev.Allowed {
		// A connect the agent's policy asks to record: "first"
		// keeps only the first per peer.
		p.mu.Lock()
		audit := p.audits[ev.CgroupID]
		p.mu.Unlock()
		if audit != nil && !audit.wantConnect(obj) {
			p.guard.Ack(ev) // not to be recorded
			return
		}
		p.events <- Event{Source: "netguard", Seq: ev.Seq, CgroupID: ev.CgroupID, PID: int(ev.PID), Cap: cap, Object: obj,
			Syscall: "connect", Allowed: true, Replayed: ev.Replayed, Ack: func() { p.guard.Ack(ev) }}
		return
	}
	p.events <- Event{Source: "netguard", Seq: ev.Seq, CgroupID: ev.CgroupID, PID: int(ev.PID), Cap: cap, Object: obj, Errno: 134,
		Replayed: ev.Replayed, Ack: func() { p.guard.Ack(ev) }}
}

// policyKey names a shared kernel policy: the class, whether allowed
// connects are recorded, and the canonical net bundle.
func policyKey(class string, audit *auditPolicy, netCaps []capability.Cap) string {
	rec := "quiet"
	if audit.recordsConnects() {
		rec = "connects"
	}
	return class + "\x00" + rec + "\x00" + canonical(netCaps)
}

// policyFor returns the kernel policy for key, making it (rules, then the
// audit flag) if it does not exist yet. The caller holds p.mu.
func (p *Portable) policyFor(key string, audit *auditPolicy, netCaps []capability.Cap) (*policy, error) {
	if pol, ok := p.policies[key]; ok {
		return pol, nil
	}
	p.nextID++
	pol := &policy{id: p.nextID, caps: canonical(netCaps)}
	if err := p.guard.SetPolicy(pol.id, netCaps); err != nil {
		return nil, err
	}
	if err := p.guard.SetAuditConnect(pol.id, audit.recordsConnects()); err != nil {
		p.guard.RemovePolicy(pol.id)
		return nil, err
	}
	p.policies[key] = pol
	return pol, nil
}

func canonical(caps []capability.Cap) string {
	s := make([]string, len(caps))
	for i, c := range caps {
		s[i] = c.String()
	}
	return fmt.Sprint(s)
}
