package netguard

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// Guard is the loaded, attached set of programs and their maps. Its methods
// are safe for concurrent use.
type Guard struct {
	mu       sync.Mutex
	closed   bool
	objs     guardObjects
	bss      *ebpf.Map // holds deny_seq and ringbuf_full; pinned with the other maps
	links    []link.Link
	policies map[uint32]ruleSet // what each policy holds in the trie now
	unix     map[uint32]unixSet // what each policy holds in unix_rules now
	bound    map[uint64]uint32  // cgroup id -> policy

	// After a reopen: the previous daemon's policies, as raw trie keys,
	// deleted once no cgroup is bound to them; and the counter values
	// that were already the previous daemon's business.
	stale             map[uint32][]netguardLpmKey
	staleUnix         map[uint32][]netguardUnixKey
	baseSeq, baseFull uint64
	pending           []Event // read at reopen to find baseSeq; delivered first
	pinned            bool
	noUnix            bool // the Unix socket programs are not attached (Options)

	rd        *ring
	replayEnd uintptr // after a reopen: records up to here were written before it (Event.Replayed)
	events    chan Event
	done      chan struct{}
	wg        sync.WaitGroup
	malformed atomic.Uint64
	readErr   atomic.Pointer[error]
}

// Load loads the programs and attaches all of them to cgroupRoot, coconut's
// cgroup2 subtree root. See the package documentation for what an error
// means; on error nothing is left attached.
func Load(cgroupRoot string) (*Guard, error) { return load(cgroupRoot, 0) }

// LoadOptions is Load with o: see Options for the fallback without the
// Unix socket programs.
func LoadOptions(cgroupRoot string, o Options) (*Guard, error) {
	return loadFallback(o, func(noUnix bool) (*Guard, error) { return loadWith(cgroupRoot, 0, "", nil, noUnix) })
}

// guardObjects adds the .bss map, which bpf2go exposes only as variables,
// so that it can be pinned and shared with a later load.
type guardObjects struct {
	netguardObjects
	Bss *ebpf.Map `ebpf:".bss"`
}

// load is Load with the ring buffer resized (ringBytes > 0, a power of two
// of at least a page), so tests can provoke a full ring.
func load(cgroupRoot string, ringBytes uint32) (*Guard, error) {
	return loadWith(cgroupRoot, ringBytes, "", nil, false)
}

// loadWith loads the programs; with pinDir set it pins what it creates,
// and with old (the maps pinned there) it reuses them and takes over the
// pinned links. With noUnix the Unix socket programs are neither loaded
// nor attached.
func loadWith(cgroupRoot string, ringBytes uint32, pinDir string, old map[string]*ebpf.Map, noUnix bool) (*Guard, error) {
	level, err := cgroupLevel(cgroupRoot)
	if err != nil {
		return nil, err
	}
	spec, err := loadNetguard()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrLoad, err)
	}
	if err := spec.Variables["agent_level"].Set(uint32(level + 1)); err != nil {
		return nil, fmt.Errorf("%w: set agent_level: %w", ErrLoad, err)
	}
	if ringBytes > 0 {
		spec.Maps["events"].MaxEntries = ringBytes
	}
	g := &Guard{
		policies: map[uint32]ruleSet{},
		unix:     map[uint32]unixSet{},
		bound:    map[uint64]uint32{},
		events:   make(chan Event, 4096),
		done:     make(chan struct{}),
		stale:    map[uint32][]netguardLpmKey{},

		staleUnix: map[uint32][]netguardUnixKey{},
		pinned:    pinDir != "",
		noUnix:    noUnix,
	}
	var opts *ebpf.CollectionOptions
	if old != nil {
		opts = &ebpf.CollectionOptions{MapReplacements: old}
	}
	if err := g.loadObjects(spec, opts); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("%w: %+v", ErrLoad, ve)
		}
		if unixHooksRefused(err) {
			return nil, fmt.Errorf("%w: %w: %w", ErrLoad, ErrUnixHooks, err)
		}
		if old != nil {
			return nil, fmt.Errorf("%w: the pinned maps do not fit this version's programs (uninstall them once no agent runs): %w", ErrPin, err)
		}
		return nil, fmt.Errorf("%w: %w", ErrLoad, err)
	}
	g.bss = g.objs.Bss
	if pinDir != "" && old == nil {
		if err := g.pinMaps(pinDir); err != nil {
			g.closeKernel()
			Uninstall(pinDir)
			return nil, err
		}
	}
	if err := g.attach(cgroupRoot, pinDir); err != nil {
		g.closeKernel()
		if old == nil && pinDir != "" {
			Uninstall(pinDir)
		}
		return nil, err
	}
	if old != nil {
		if err := g.adoptState(cgroupRoot); err != nil {
			g.closeKernel()
			return nil, err
		}
	}
	g.rd, err = openRing(g.objs.Events)
	if err != nil {
		g.closeKernel()
		return nil, fmt.Errorf("%w: ring buffer reader: %w", ErrLoad, err)
	}
	if old != nil {
		g.findBase()
	}
	g.wg.Add(1)
	go g.read()
	return g, nil
}

func (g *Guard) attach(root, pinDir string) error {
	progs := []struct {
		name string
		prog *ebpf.Program
		typ  ebpf.AttachType
	}{
		{"connect4", g.objs.Connect4, ebpf.AttachCGroupInet4Connect},
		{"connect6", g.objs.Connect6, ebpf.AttachCGroupInet6Connect},
		{"sendmsg4", g.objs.Sendmsg4, ebpf.AttachCGroupUDP4Sendmsg},
		{"sendmsg6", g.objs.Sendmsg6, ebpf.AttachCGroupUDP6Sendmsg},
		{"bind4", g.objs.Bind4, ebpf.AttachCGroupInet4Bind},
		{"bind6", g.objs.Bind6, ebpf.AttachCGroupInet6Bind},
		{"sock_create", g.objs.SockCreate, ebpf.AttachCGroupInetSockCreate},
		{"connect_unix", g.objs.ConnectUnix, ebpf.AttachCgroupUnixConnect},
		{"sendmsg_unix", g.objs.SendmsgUnix, ebpf.AttachCgroupUnixSendmsg},
	}
	dir, err := os.Open(root)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrAttach, err)
	}
	defer dir.Close()
	for _, p := range progs {
		unixHook := p.typ == ebpf.AttachCgroupUnixConnect || p.typ == ebpf.AttachCgroupUnixSendmsg
		if unixHook && g.noUnix {
			// The fallback (Options): a pinned Unix link a previous
			// daemon left is not touched; it keeps its program, which
			// reads the same maps.
			continue
		}
		if p.prog == nil {
			return fmt.Errorf("%w: %s: not in the object", ErrLoad, p.name)
		}
		var l link.Link
		var err error
		if pinDir != "" {
			l, err = attachPinned(root, filepath.Join(pinDir, "link_"+p.name), p.typ, p.prog)
		} else {
			l, err = link.AttachCgroup(link.CgroupOptions{Path: root, Attach: p.typ, Program: p.prog})
		}
		if err != nil {
			if unixHook {
				return fmt.Errorf("%w: %w: %s: %w", ErrAttach, ErrUnixHooks, p.name, err)
			}
			return fmt.Errorf("%w: %s: %w", ErrAttach, p.name, err)
		}
		g.links = append(g.links, l)
		// Check the kernel really runs it there: a program that is loaded
		// but not attached would be a silent fail-open.
		if err := verifyAttached(dir, p.prog, p.typ); err != nil {
			return fmt.Errorf("%w: %s: %w", ErrAttach, p.name, err)
		}
	}
	return nil
}

func verifyAttached(dir *os.File, prog *ebpf.Program, typ ebpf.AttachType) error {
	info, err := prog.Info()
	if err != nil {
		return err
	}
	id, ok := info.ID()
	if !ok {
		return errors.New("kernel gives no program id")
	}
	res, err := link.QueryPrograms(link.QueryOptions{Target: int(dir.Fd()), Attach: typ})
	if err != nil {
		return err
	}
	for _, p := range res.Programs {
		if p.ID == id {
			return nil
		}
	}
	return errors.New("not found attached after attach")
}

// read drains the ring buffer into the events channel until Close.
func (g *Guard) read() {
	defer g.wg.Done()
	defer close(g.events)
	for _, ev := range g.pending {
		select {
		case g.events <- ev:
		case <-g.done:
			return
		}
	}
	g.pending = nil
	for {
		sample, end, err := g.rd.next(false)
		if err != nil {
			if !errors.Is(err, errRingClosed) {
				g.readErr.Store(&err)
			}
			return
		}
		ev, err := decodeEvent(sample)
		if err != nil {
			g.malformed.Add(1)
			g.rd.ack(end)
			continue
		}
		ev.end, ev.Replayed = end, end <= g.replayEnd
		select {
		case g.events <- ev:
		case <-g.done:
			return
		}
	}
}

// Events returns the decoded denies, in ring buffer order. The channel is
// closed by Close or when reading the ring fails (see Err). It blocks the
// reader when not drained; the kernel then counts lost events. Every event
// received must be acknowledged with Ack once it is recorded (or will
// never be): until then it stays in the ring, and a pinned guard reopened
// after this process died delivers it again (Replayed).
func (g *Guard) Events() <-chan Event { return g.events }

// Err returns why the events channel closed before Close, or nil.
func (g *Guard) Err() error {
	if p := g.readErr.Load(); p != nil {
		return *p
	}
	return nil
}

// Counters returns the kernel's deny count (the last sequence number) and
// how many of those denies found the ring buffer full.
func (g *Guard) Counters() (denies, ringbufFull uint64, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return 0, 0, ErrClosed
	}
	if err := g.objs.DenySeq.Get(&denies); err != nil {
		return 0, 0, fmt.Errorf("read deny_seq: %w", err)
	}
	if err := g.objs.RingbufFull.Get(&ringbufFull); err != nil {
		return 0, 0, fmt.Errorf("read ringbuf_full: %w", err)
	}
	return denies - g.baseSeq, ringbufFull - g.baseFull, nil
}

// Ack tells the guard that ev is recorded (or never will be): the ring
// may drop it. Events are acknowledged in any order; the ring's consumer
// position moves past a record once it and every one before it are.
func (g *Guard) Ack(ev Event) {
	if ev.end != 0 {
		g.rd.ack(ev.end)
	}
}

// Pending reports whether events are in flight: in the ring not read yet,
// or read and not yet acknowledged.
func (g *Guard) Pending() bool { return g.rd.unread() > 0 || g.rd.unacked() > 0 }

// Malformed counts ring buffer records that did not decode (never expected;
// they keep the reconciliation exact: denies = events + ringbuf_full +
// Malformed).
func (g *Guard) Malformed() uint64 { return g.malformed.Load() }

// Close stops the events and frees what this process holds. An unpinned
// guard's programs detach; a pinned one's stay attached for the next
// daemon (see Open and Uninstall).
func (g *Guard) Close() error {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return ErrClosed
	}
	g.closed = true
	g.mu.Unlock()
	close(g.done)
	g.rd.close()
	g.wg.Wait()
	g.rd.release()
	return g.closeKernel()
}

func (g *Guard) closeKernel() error {
	var errs []error
	for _, l := range g.links {
		errs = append(errs, l.Close())
	}
	g.links = nil
	errs = append(errs, g.objs.Close())
	if g.objs.Bss != nil {
		errs = append(errs, g.objs.Bss.Close())
	}
	return errors.Join(errs...)
}

// unixHooksRefused tells a load that failed on the Unix socket programs
// (a kernel before 6.7 has neither their attach types nor, before 6.2,
// bpf_cast_to_kern_ctx): cilium/ebpf names the failing program in its
// error, and nothing else distinguishes the cause.
func unixHooksRefused(err error) bool {
	s := err.Error()
	return strings.Contains(s, "program connect_unix") || strings.Contains(s, "program sendmsg_unix")
}
