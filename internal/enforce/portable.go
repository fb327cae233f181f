package enforce

import (
	"fmt"
	"sync"

	"github.com/coconut-os/coconut/internal/capability"
	"github.com/coconut-os/coconut/internal/launch"
	"github.com/coconut-os/coconut/internal/netguard"
)

// Portable is the backend for any kernel with Landlock and cgroup BPF: the
// Landlock floor (applied by the trampoline) and the network guard.
type Portable struct {
	guard  *netguard.Guard
	events chan Event

	mu       sync.Mutex
	policies map[string]*policy // by policy key
	agents   map[uint64]bound   // by AID
	nextID   uint32
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

// LoadPortable loads the network guard on coconut's cgroup subtree. Both
// halves must work: without Landlock or cgroup BPF, agents do not start.
func LoadPortable(cgroupRoot string) (*Portable, error) {
	if abi := launch.LandlockABI(); abi < 1 {
		return nil, fmt.Errorf("%w: portable: the kernel has no Landlock (enable CONFIG_SECURITY_LANDLOCK and landlock in lsm=)", ErrUnavailable)
	}
	g, err := netguard.Load(cgroupRoot)
	if err != nil {
		return nil, fmt.Errorf("%w: portable: cgroup BPF network guard: %v", ErrUnavailable, err)
	}
	p := &Portable{guard: g, events: make(chan Event, 4096), policies: map[string]*policy{}, agents: map[uint64]bound{}}
	go p.forward()
	return p, nil
}

// Name implements Enforcer.
func (p *Portable) Name() string { return "portable" }

// Rights implements Enforcer.
func (p *Portable) Rights() []string {
	return append(launch.FloorRights(), "netguard.connect", "netguard.sendmsg", "netguard.bind", "netguard.sock_create")
}

// Bind implements Enforcer: the agent's class shares one kernel policy.
func (p *Portable) Bind(a Agent) (*launch.Floor, error) {
	var netCaps []capability.Cap
	for _, c := range a.Caps {
		if c.Domain == "net" {
			netCaps = append(netCaps, c)
		}
	}
	key := canonical(netCaps)
	p.mu.Lock()
	defer p.mu.Unlock()
	// Agents of one policy key share rules only while their bundles agree;
	// a bundle changed by a grant gets a policy of its own.
	pk := a.Policy + "\x00" + key
	pol, ok := p.policies[pk]
	if !ok {
		p.nextID++
		pol = &policy{id: p.nextID, caps: key}
		if err := p.guard.SetPolicy(pol.id, netCaps); err != nil {
			return nil, fmt.Errorf("network policy for agent %d: %w", a.AID, err)
		}
		p.policies[pk] = pol
	}
	if err := p.guard.Bind(a.CgroupID, pol.id); err != nil {
		return nil, fmt.Errorf("bind agent %d to its network policy: %w", a.AID, err)
	}
	pol.refs++
	p.agents[a.AID] = bound{cgroupID: a.CgroupID, key: pk}
	ceiling := a.Ceiling
	if ceiling == nil {
		ceiling = a.Caps
	}
	return Floor(ceiling), nil
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
	pk := a.Policy + "\x00" + canonical(netCaps)
	if pk == old.key {
		return nil
	}
	pol, ok := p.policies[pk]
	if !ok {
		p.nextID++
		pol = &policy{id: p.nextID, caps: canonical(netCaps)}
		if err := p.guard.SetPolicy(pol.id, netCaps); err != nil {
			return fmt.Errorf("network policy for agent %d: %w", a.AID, err)
		}
		p.policies[pk] = pol
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
	err := p.guard.Unbind(b.cgroupID)
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
	return Counters{KernelDenies: d, RingbufFull: full}, err
}

// Close implements Enforcer: the guard's programs detach.
func (p *Portable) Close() error { return p.guard.Close() }

func (p *Portable) forward() {
	defer close(p.events)
	for ev := range p.guard.Events() {
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
		p.events <- Event{Source: "netguard", Seq: ev.Seq, CgroupID: ev.CgroupID, PID: int(ev.PID), Cap: cap, Object: obj, Errno: 134}
	}
}

func canonical(caps []capability.Cap) string {
	s := make([]string, len(caps))
	for i, c := range caps {
		s[i] = c.String()
	}
	return fmt.Sprint(s)
}
