package bpflsm

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"
)

// Guard is the loaded bpf-lsm programs and their maps.
type Guard struct {
	objs   lsmObjects
	links  []link.Link
	pinDir string // "" when not pinned
	rd     *ringbuf.Reader
	events chan Event

	// The counters' base: what the kernel had counted before this Open,
	// less the denies still pending in the ring (findBase).
	baseSeq, baseFull uint64
	pending           *Event // read by findBase; delivered first
	coverage          Coverage

	mu       sync.Mutex
	nextPol  uint32
	bound    map[uint64]bound // by cgroup id
	measured map[uint64][]lsmLsmMeasuredKey
}

// Measured is a file coconutd measured for an agent (a sealed memfd: the
// program the trampoline execs, or the script its interpreter reads). It
// has no path a rule could name, so it is allowed by identity.
type Measured struct {
	Dev, Ino uint64 // as stat(2) reports them
	Exec     bool   // the program: exec and map as code; else read only
}

// MeasuredOf is f's identity for Allow.
func MeasuredOf(f *os.File, exec bool) (Measured, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return Measured{}, fmt.Errorf("stat measured file: %w", err)
	}
	return Measured{Dev: st.Dev, Ino: st.Ino, Exec: exec}, nil
}

// AllowMeasured lets cgroupID open (and, for a program, exec and map) exactly
// these inodes, whatever their path; Unbind forgets them.
func (g *Guard) AllowMeasured(cgroupID uint64, files []Measured) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, m := range files {
		// The kernel's dev_t inside the superblock: MAJOR << 20 | MINOR.
		k := lsmLsmMeasuredKey{Cgroup: cgroupID, Ino: m.Ino, Dev: unix.Major(m.Dev)<<20 | unix.Minor(m.Dev)}
		r := uint32(RightRead)
		if m.Exec {
			r |= RightExec | RightMapExec
		}
		if err := g.objs.Measured.Put(k, r); err != nil {
			return fmt.Errorf("measured file of cgroup %d: %w", cgroupID, err)
		}
		g.measured[cgroupID] = append(g.measured[cgroupID], k)
	}
	return nil
}

type bound struct {
	policy uint32
	gen    uint32
	pol    Policy
}

// Spec is the compiled object, for tests and probes.
func Spec() (*ebpf.CollectionSpec, error) { return loadLsm() }

// Open loads the programs and attaches every hook. With pinDir, the maps
// are pinned there by name (an existing pin is reused: a restarted daemon
// takes over the bindings, rules, counters and unread events) and so are
// the links: a hook whose link pin exists keeps the program attached by
// the previous daemon, so there is no moment without a check. Close keeps
// the pins; Uninstall removes them.
func Open(pinDir string) (g *Guard, err error) {
	if pinDir != "" {
		// A kernel that refuses the programs (this is how a probe learns
		// it) must not leave the maps it pinned on the way: remove a pin
		// directory this call made when it fails.
		if _, statErr := os.Stat(pinDir); errors.Is(statErr, os.ErrNotExist) {
			defer func() {
				if err != nil {
					os.RemoveAll(pinDir)
				}
			}()
		}
	}
	spec, err := loadLsm()
	if err != nil {
		return nil, fmt.Errorf("bpf-lsm object: %w", err)
	}
	opts := &ebpf.CollectionOptions{}
	if pinDir != "" {
		if err := os.MkdirAll(pinDir, 0o700); err != nil {
			return nil, err
		}
		for _, name := range []string{"agents", "rules", "unix_rules", "files", "events", "counters", "measured"} {
			spec.Maps[name].Pinning = ebpf.PinByName
		}
		opts.Maps.PinPath = pinDir
	}
	g = &Guard{pinDir: pinDir, events: make(chan Event, 4096), bound: map[uint64]bound{}, measured: map[uint64][]lsmLsmMeasuredKey{}}
	absent, err := loadObjects(spec, &g.objs, opts)
	if err != nil {
		return nil, fmt.Errorf("%w: load: %v", ErrRefused, trimHint(err))
	}
	progs := hooks(&g.objs)
	attached := map[string]bool{}
	for hook, p := range progs {
		attached[hook] = true
		pin := ""
		if pinDir != "" {
			pin = filepath.Join(pinDir, "link_"+hook)
			if l, err := link.LoadPinnedLink(pin, nil); err == nil {
				g.links = append(g.links, l)
				continue
			}
		}
		l, err := link.AttachLSM(link.LSMOptions{Program: p})
		if err != nil {
			g.closeAll()
			return nil, fmt.Errorf("%w: attach lsm/%s: %v", ErrRefused, hook, err)
		}
		if pin != "" {
			if err := l.Pin(pin); err != nil {
				l.Close()
				g.closeAll()
				return nil, fmt.Errorf("pin lsm/%s: %w", hook, err)
			}
		}
		g.links = append(g.links, l)
	}
	g.coverage = coverage(attached, absent)
	// Policy ids of a previous daemon stay in use until their cgroups are
	// bound again: start above them.
	var cg uint64
	var a lsmLsmAgent
	it := g.objs.Agents.Iterate()
	for it.Next(&cg, &a) {
		g.nextPol = max(g.nextPol, a.Policy)
	}
	rd, err := ringbuf.NewReader(g.objs.Events)
	if err != nil {
		g.closeAll()
		return nil, fmt.Errorf("bpf-lsm ring buffer: %w", err)
	}
	g.rd = rd
	g.findBase()
	go g.read()
	return g, nil
}

// findBase sets the counters' base: denies numbered before this Open are
// a previous daemon's (it read them, and recorded them or died first),
// except those whose events still wait in the pinned ring, which this
// Guard delivers and so counts. The ring's first pending event gives that
// boundary: it is read now, without waiting, and delivered first.
func (g *Guard) findBase() {
	var d0, f0 uint64
	g.objs.Counters.Lookup(uint32(0), &d0)
	g.objs.Counters.Lookup(uint32(1), &f0)
	g.baseSeq, g.baseFull = d0, f0
	if g.rd.AvailableBytes() == 0 {
		return
	}
	g.rd.SetDeadline(time.Now())
	defer g.rd.SetDeadline(time.Time{})
	rec, err := g.rd.Read()
	if err != nil {
		return // nothing whole to read: the reader goes on from here
	}
	ev, err := decodeSample(rec.RawSample)
	if err != nil {
		return
	}
	g.pending = &ev
	g.baseSeq = min(d0, ev.Seq-1)
}

// Coverage says what the attached programs decide besides opens, reads,
// writes and execs (the Landlock floor leaves it to them).
func (g *Guard) Coverage() Coverage { return g.coverage }

// PinDir is where Open pins, beside netguard's pins for the same subtree.
func PinDir(netguardPins string) string { return netguardPins + "-lsm" }

// Bind makes cgroupID an agent with rules, or moves a bound one to them:
// the rules go in under a new policy id, then one update of the agents
// map switches the cgroup over (no moment without rules), then the old
// policy's rules are deleted. Open descriptors are decided again on their
// next read or write.
func (g *Guard) Bind(cgroupID uint64, p Policy) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	old, had := g.bound[cgroupID]
	g.nextPol++
	pol := g.nextPol
	if err := g.putRules(pol, p); err != nil {
		g.deleteRules(pol, p)
		return err
	}
	b := bound{policy: pol, gen: old.gen + 1, pol: p}
	if err := g.objs.Agents.Put(cgroupID, lsmLsmAgent{Policy: pol, Gen: b.gen}); err != nil {
		g.deleteRules(pol, p)
		return fmt.Errorf("bind cgroup %d: %w", cgroupID, err)
	}
	g.bound[cgroupID] = b
	if had {
		g.deleteRules(old.policy, old.pol)
	}
	return nil
}

// Unbind forgets a cgroup (empty: its tasks are gone).
func (g *Guard) Unbind(cgroupID uint64) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	b, ok := g.bound[cgroupID]
	if err := g.objs.Agents.Delete(cgroupID); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return err
	}
	if ok {
		delete(g.bound, cgroupID)
		g.deleteRules(b.policy, b.pol)
	}
	for _, k := range g.measured[cgroupID] {
		g.objs.Measured.Delete(&k)
	}
	delete(g.measured, cgroupID)
	return nil
}

func key(pol uint32, r Rule) lsmLsmKey {
	k := lsmLsmKey{Prefixlen: uint32(32 + 8*len(r.Key)), Policy: pol}
	for i := 0; i < len(r.Key); i++ {
		k.Path[i] = int8(r.Key[i])
	}
	return k
}

func unixKey(pol uint32, addr string) lsmLsmUnixKey {
	k := lsmLsmUnixKey{Policy: pol, Len: uint32(len(addr))}
	copy(k.Path[:], addr)
	return k
}

func (g *Guard) putRules(pol uint32, p Policy) error {
	for _, r := range p.Files {
		if err := g.objs.Rules.Put(key(pol, r), r.Rights); err != nil {
			return fmt.Errorf("rule %q: %w", r.Key, err)
		}
	}
	for _, a := range p.Unix {
		if err := g.objs.UnixRules.Put(unixKey(pol, a), uint8(1)); err != nil {
			return fmt.Errorf("unix rule %q: %w", a, err)
		}
	}
	return nil
}

func (g *Guard) deleteRules(pol uint32, p Policy) {
	for _, r := range p.Files {
		k := key(pol, r)
		g.objs.Rules.Delete(&k)
	}
	for _, a := range p.Unix {
		k := unixKey(pol, a)
		g.objs.UnixRules.Delete(&k)
	}
}

// Counters returns the denies counted in the kernel and those among them
// whose event the ring buffer could not take.
func (g *Guard) Counters() (denies, ringbufFull uint64, err error) {
	if err = g.objs.Counters.Lookup(uint32(0), &denies); err != nil {
		return 0, 0, err
	}
	if err = g.objs.Counters.Lookup(uint32(1), &ringbufFull); err != nil {
		return 0, 0, err
	}
	return denies - g.baseSeq, ringbufFull - g.baseFull, nil
}

// Close stops reading events. Pinned links and maps stay (agents stay
// enforced); unpinned links detach.
func (g *Guard) Close() error {
	if g.rd != nil {
		g.rd.Close()
	}
	g.closeAll()
	return nil
}

func (g *Guard) closeAll() {
	for _, l := range g.links {
		l.Close()
	}
	g.links = nil
	g.objs.Close()
}

// Uninstall removes the pins of a guard (its programs detach once no
// daemon holds them).
func Uninstall(pinDir string) error { return os.RemoveAll(pinDir) }
