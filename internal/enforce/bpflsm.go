package enforce

import (
	"errors"
	"fmt"
	"sync"

	"github.com/coconut-os/coconut/internal/bpflsm"
	"github.com/coconut-os/coconut/internal/capability"
	"github.com/coconut-os/coconut/internal/launch"
	"github.com/coconut-os/coconut/internal/netguard"
	pol "github.com/coconut-os/coconut/internal/policy"
)

// BPFLSM is the backend for kernels that run BPF LSM programs: every file
// open, read and write on an open descriptor, exec, ptrace, signal, bpf()
// and mount of an agent is decided at the LSM hook (internal/bpflsm), Unix
// socket addresses too; inet connect/bind/sendmsg stay with the network
// guard (the same allowlist as the portable backend, by construction).
// There is no seccomp supervisor: grants and revocations are map updates,
// and a revoke cuts descriptors already open. The Landlock floor is still
// applied, built from the ceiling, for what the programs do not hook
// (directory reads, device ioctls, renames and links across directories)
// at the ceiling's grain; it leaves opens and execs to the programs
// (launch.Floor.LSMDecides), and making, removing, renaming, linking and
// truncation too where the path hooks are attached (Coverage), so their
// denies have rows.
type BPFLSM struct {
	net    *Portable
	guard  *bpflsm.Guard
	pinWhy string
	self   string // the trampoline binary: its exec starts every agent
	events chan Event

	mu     sync.Mutex
	agents map[uint64]uint64 // AID → cgroup id
}

// LoadBPFLSM loads the bpf-lsm backend after the selection probe has seen
// a program fire inside a probe cgroup (bpflsm.Probe); a kernel that lists
// bpf but refuses trampolines, or runs without bpf in lsm=, is refused
// with ErrUnavailable and the reason.
func LoadBPFLSM(cfg Config) (*BPFLSM, error) {
	if err := bpflsm.Probe(cfg.CgroupRoot); err != nil {
		return nil, fmt.Errorf("%w: bpf-lsm: %v", ErrUnavailable, err)
	}
	ncfg := cfg
	ncfg.HolderSocket = "" // no supervisor: files are the programs' business
	ncfg.unixByLSM = true  // Unix socket addresses too (socket_connect/sendmsg)
	p, err := LoadPortable(ncfg)
	if err != nil {
		return nil, err
	}
	pinDir, pinWhy := "", ""
	if pins, err := netguard.PinDir(cfg.CgroupRoot); err == nil {
		pinDir = bpflsm.PinDir(pins)
		pinWhy = "bpf-lsm pinned in " + pinDir + ": files, exec and processes stay enforced while coconutd is down"
	} else {
		pinWhy = fmt.Sprintf("bpf-lsm not pinned (%v): agents are unenforced while coconutd is down", err)
	}
	g, err := bpflsm.Open(pinDir)
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("%w: bpf-lsm: %v", ErrUnavailable, err)
	}
	b := &BPFLSM{net: p, guard: g, pinWhy: pinWhy, self: cfg.Self, events: make(chan Event, 4096), agents: map[uint64]uint64{}}
	go b.forward()
	return b, nil
}

// PinStatus says whether enforcement outlives the daemon.
func (b *BPFLSM) PinStatus() string { return b.net.PinStatus() + "; " + b.pinWhy }

// Name implements Enforcer.
func (b *BPFLSM) Name() string { return "bpf-lsm" }

// Rights implements Enforcer.
func (b *BPFLSM) Rights() []string {
	r := append(launch.FloorRights(), "netguard.connect", "netguard.sendmsg", "netguard.bind", "netguard.sock_create")
	r = append(r, "lsm.file_open", "lsm.file_permission", "lsm.bprm_check_security", "lsm.ptrace_access_check",
		"lsm.ptrace_traceme", "lsm.task_kill", "lsm.bpf", "lsm.sb_mount", "lsm.move_mount",
		"lsm.socket_connect_unix", "lsm.socket_sendmsg_unix", "lsm.mmap_file_exec", "lsm.file_mprotect_exec", "lsm.userns_create")
	cov := b.guard.Coverage()
	if cov.MakeRemove {
		r = append(r, "lsm.path_mknod", "lsm.path_mkdir", "lsm.path_symlink", "lsm.path_unlink", "lsm.path_rmdir",
			"lsm.path_rename", "lsm.path_link")
	}
	if cov.Truncate {
		r = append(r, "lsm.truncate")
	}
	if cov.Attrs {
		r = append(r, "lsm.path_chmod", "lsm.path_chown", "lsm.xattr")
	}
	return r
}

// RevokesDescriptors reports that a revoke cuts descriptors already open
// (file_permission): the agent need not be quarantined for them.
func (b *BPFLSM) RevokesDescriptors() bool { return true }

// lsmBaseline is the baseline plus the execs every spawn makes inside
// the agent's cgroup: the trampoline and the agent's measured program.
// (The portable supervisor is installed by the trampoline and allows the
// measured files by identity; here they get path rules.)
func (b *BPFLSM) lsmBaseline(a Agent) bpflsm.Baseline {
	base := bpflsm.Baseline{Read: pol.System.Read, Write: pol.System.Write, Exec: pol.System.Exec,
		Libraries: []string{"/lib", "/lib64", "/usr/lib", "/usr/lib64", "/usr/lib32"}}
	for _, p := range append([]string{b.self}, a.Programs...) {
		if p != "" {
			base.Programs = append(base.Programs, p)
		}
	}
	return base
}

// allowMeasured lets the agent's cgroup exec its measured program and
// read its measured script from their memfds, by inode: nothing else
// without a path.
func (b *BPFLSM) allowMeasured(a Agent) error {
	var ms []bpflsm.Measured
	for _, f := range a.Measured {
		if f.File == nil {
			continue
		}
		m, err := bpflsm.MeasuredOf(f.File, f.Exec)
		if err != nil {
			return err
		}
		ms = append(ms, m)
	}
	return b.guard.AllowMeasured(a.CgroupID, ms)
}

func netOnly(caps []capability.Cap) []capability.Cap {
	var out []capability.Cap
	for _, c := range caps {
		if c.Domain == "net" {
			out = append(out, c)
		}
	}
	return out
}

// Bind implements Enforcer. A bundle with an fs scope the programs cannot
// express (a glob inside a component) is refused: never widened.
func (b *BPFLSM) Bind(a Agent) (*launch.Floor, error) {
	pol, err := bpflsm.Compile(a.Caps, b.lsmBaseline(a))
	if err != nil {
		return nil, fmt.Errorf("%w: bpf-lsm: agent %d: %v", ErrUnavailable, a.AID, err)
	}
	if a.Ceiling != nil {
		// A later grant must compile too: refuse now, not at the grant.
		if _, err := bpflsm.Compile(a.Ceiling, b.lsmBaseline(a)); err != nil {
			return nil, fmt.Errorf("%w: bpf-lsm: agent %d's ceiling: %v", ErrUnavailable, a.AID, err)
		}
	}
	na := a
	na.Caps, na.Ceiling = netOnly(a.Caps), netOnly(a.Ceiling)
	if _, err := b.net.Bind(na); err != nil {
		return nil, err
	}
	if err := b.guard.Bind(a.CgroupID, pol); err != nil {
		b.net.Unbind(a.AID)
		return nil, fmt.Errorf("bpf-lsm: bind agent %d: %w", a.AID, err)
	}
	if err := b.allowMeasured(a); err != nil {
		b.guard.Unbind(a.CgroupID)
		b.net.Unbind(a.AID)
		return nil, fmt.Errorf("bpf-lsm: bind agent %d: %w", a.AID, err)
	}
	b.mu.Lock()
	b.agents[a.AID] = a.CgroupID
	b.mu.Unlock()
	ceiling := a.Ceiling
	if ceiling == nil {
		ceiling = a.Caps
	}
	fl := Floor(ceiling)
	fl.TrapUnix = false
	fl.LSMDecides = true // opens and execs are the programs' (with a row), not Landlock's EACCES
	// So are making, removing, renaming, linking and truncation where this
	// kernel has the path hooks attached (bpflsm.Coverage).
	cov := b.guard.Coverage()
	fl.LSMMakeRemove, fl.LSMTruncate = cov.MakeRemove, cov.Truncate
	return fl, nil
}

// Update implements Enforcer: the new rules go in under a new policy id
// and the cgroup switches in one map update; open descriptors are decided
// again on their next read or write.
func (b *BPFLSM) Update(a Agent) error {
	pol, err := bpflsm.Compile(a.Caps, b.lsmBaseline(a))
	if err != nil {
		return fmt.Errorf("bpf-lsm: agent %d: %w", a.AID, err)
	}
	b.mu.Lock()
	cg, ok := b.agents[a.AID]
	b.mu.Unlock()
	if !ok {
		return fmt.Errorf("agent %d is not bound", a.AID)
	}
	na := a
	na.Caps, na.Ceiling, na.CgroupID = netOnly(a.Caps), netOnly(a.Ceiling), cg
	if err := b.net.Update(na); err != nil {
		return err
	}
	return b.guard.Bind(cg, pol)
}

// Unbind implements Enforcer.
func (b *BPFLSM) Unbind(aid uint64) error {
	b.mu.Lock()
	cg, ok := b.agents[aid]
	delete(b.agents, aid)
	b.mu.Unlock()
	err := b.net.Unbind(aid)
	if ok {
		err = errors.Join(err, b.guard.Unbind(cg))
	}
	return err
}

// Events implements Enforcer.
func (b *BPFLSM) Events() <-chan Event { return b.events }

// Counters implements Enforcer: the network guard's and the programs'.
func (b *BPFLSM) Counters() (Counters, error) {
	c, err := b.net.Counters()
	d, full, lerr := b.guard.Counters()
	c.KernelDenies += d
	c.RingbufFull += full
	if c.BySource == nil {
		c.BySource = map[string]uint64{}
	}
	c.BySource["bpf-lsm"] = d // the agent counters compare by source
	return c, errors.Join(err, lerr)
}

// Close implements Enforcer: pinned programs stay attached.
func (b *BPFLSM) Close() error {
	return errors.Join(b.guard.Close(), b.net.Close())
}

func (b *BPFLSM) forward() {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for ev := range b.net.Events() {
			b.events <- ev
		}
	}()
	go func() {
		defer wg.Done()
		for ev := range b.guard.Events() {
			b.events <- Event{Source: "bpf-lsm", Seq: ev.Seq, CgroupID: ev.CgroupID, PID: int(ev.PID), Cap: ev.Cap(),
				Object: ev.Object(), Errno: 134, Syscall: ev.OpName()}
		}
	}()
	wg.Wait()
	close(b.events)
}
