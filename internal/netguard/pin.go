package netguard

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// BPFFS is where the BPF file system is expected.
const BPFFS = "/sys/fs/bpf"

// mapPins are the maps a restarted daemon needs: the bindings, the rules
// (addresses and Unix sockets) and per-policy flags,
// the ring buffer (with the events written while no daemon read it) and
// .bss (the deny sequence and ringbuf_full counters). .rodata is not
// shared: each load sets its own agent_level.
var mapPins = []string{"agents", "rules", "policy_flags", "unix_rules", "events", ".bss"}

// pinName is a pinned object's file name: bpffs refuses names with a dot
// in some kernels' older paths, so ".bss" is stored as "bss".
func pinName(name string) string { return strings.TrimPrefix(name, ".") }

// PinDir returns the bpffs directory holding the pins of the guard on
// cgroupRoot (/sys/fs/bpf/coconut-NAME, NAME the subtree's directory
// name). It mounts bpffs at /sys/fs/bpf only when nothing is mounted
// there; anything else mounted there is an error, never replaced.
func PinDir(cgroupRoot string) (string, error) {
	if err := ensureBPFFS(BPFFS); err != nil {
		return "", err
	}
	return PinPath(cgroupRoot), nil
}

// PinPath is PinDir without looking at (or mounting) bpffs.
func PinPath(cgroupRoot string) string {
	name := filepath.Base(filepath.Clean(cgroupRoot))
	if !strings.HasPrefix(name, "coconut") {
		name = "coconut-" + name
	}
	return filepath.Join(BPFFS, name)
}

func ensureBPFFS(dir string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrPin, dir, err)
	}
	switch uint64(st.Type) {
	case unix.BPF_FS_MAGIC:
		return nil
	case unix.SYSFS_MAGIC:
		// The mount point exists in sysfs but nothing is mounted on it.
		if err := unix.Mount("bpf", dir, "bpf", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=0700"); err != nil {
			return fmt.Errorf("%w: mount bpffs on %s: %w", ErrPin, dir, err)
		}
		return nil
	}
	return fmt.Errorf("%w: %s is not a BPF file system (type %#x)", ErrPin, dir, st.Type)
}

// Open is Load for a daemon whose agents outlive it: the programs' links
// and the maps they use are pinned under pinDir, so a killed daemon leaves
// the network guarded. If pinDir holds the pins of a previous guard on the
// same cgroupRoot, Open reuses its maps (bindings, rules, counters and the
// events no one has read yet) and swaps its own programs into the pinned
// links (one atomic link update each: there is no moment without a
// program). Otherwise it loads, attaches and pins afresh.
//
// After a reopen the previous daemon's bindings stay in force until the
// caller binds each cgroup again (under a new policy id: see MaxPolicyID);
// the previous policies are deleted once no cgroup uses them, and
// bindings of cgroups that no longer exist are dropped at once. Counters
// count from the reopen: the denies the previous daemon had already read
// are not counted again.
//
// Close keeps the pins (a clean stop: agents keep running); Uninstall
// removes them. Pins that cannot be reused (another version's maps) are an
// error wrapping ErrPin: uninstall them once no agent runs.
func Open(cgroupRoot, pinDir string) (*Guard, error) {
	return OpenOptions(cgroupRoot, pinDir, Options{})
}

// OpenOptions is Open with o: see Options for the fallback without the
// Unix socket programs. A guard pinned without them (an older kernel)
// reopens without them.
func OpenOptions(cgroupRoot, pinDir string, o Options) (*Guard, error) {
	if err := os.MkdirAll(pinDir, 0o700); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrPin, err)
	}
	old, err := loadPinnedMaps(pinDir)
	if err != nil {
		return nil, err
	}
	g, err := loadFallback(o, func(noUnix bool) (*Guard, error) { return loadWith(cgroupRoot, 0, pinDir, old, noUnix) })
	for _, m := range old {
		m.Close() // the collection holds its own clones
	}
	return g, err
}

// loadPinnedMaps returns the pinned maps, none if nothing is pinned, or an
// error if only some are (a half-made pin directory is not trusted).
func loadPinnedMaps(dir string) (map[string]*ebpf.Map, error) {
	out := map[string]*ebpf.Map{}
	for _, name := range mapPins {
		m, err := ebpf.LoadPinnedMap(filepath.Join(dir, pinName(name)), nil)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			closeMaps(out)
			return nil, fmt.Errorf("%w: open pinned map %s: %w", ErrPin, name, err)
		}
		out[name] = m
	}
	if len(out) != 0 && len(out) != len(mapPins) {
		closeMaps(out)
		return nil, fmt.Errorf("%w: %s holds only some of the guard's maps: uninstall it once no agent runs", ErrPin, dir)
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

func closeMaps(ms map[string]*ebpf.Map) {
	for _, m := range ms {
		m.Close()
	}
}

// pinMaps pins the maps of a fresh load.
func (g *Guard) pinMaps(dir string) error {
	maps := map[string]*ebpf.Map{"agents": g.objs.Agents, "rules": g.objs.Rules, "policy_flags": g.objs.PolicyFlags,
		"unix_rules": g.objs.UnixRules, "events": g.objs.Events, ".bss": g.bss}
	for _, name := range mapPins {
		m := maps[name]
		if m == nil {
			return fmt.Errorf("%w: map %s not loaded", ErrPin, name)
		}
		if err := m.Pin(filepath.Join(dir, pinName(name))); err != nil {
			return fmt.Errorf("%w: pin map %s: %w", ErrPin, name, err)
		}
	}
	return nil
}

// attachPinned puts prog behind the link pinned at path (an atomic
// program swap), or attaches and pins a new link when none is pinned.
func attachPinned(root, path string, typ ebpf.AttachType, prog *ebpf.Program) (link.Link, error) {
	l, err := link.LoadPinnedLink(path, nil)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		l, err = link.AttachCgroup(link.CgroupOptions{Path: root, Attach: typ, Program: prog})
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrAttach, err)
		}
		if err := l.Pin(path); err != nil {
			l.Close()
			return nil, fmt.Errorf("%w: pin link: %w", ErrPin, err)
		}
		return l, nil
	case err != nil:
		return nil, fmt.Errorf("%w: open pinned link: %w", ErrPin, err)
	}
	err = l.Update(prog)
	if errors.Is(err, unix.ENOLINK) {
		// The link outlived its cgroup: the subtree was removed (by
		// --uninstall of another daemon, a reap, or by hand) and made
		// again, and the kernel severed the link from the old cgroup.
		// It guards nothing, and no agent of the old cgroup is left, so
		// replace it: keeping the dead link would stop every start of
		// this daemon with "link has been severed".
		l.Close()
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("%w: remove the severed pinned link: %w", ErrPin, err)
		}
		return attachPinned(root, path, typ, prog)
	}
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("%w: swap the program of the pinned link: %w", ErrAttach, err)
	}
	return l, nil
}

// Uninstall detaches the programs pinned under pinDir and removes the
// directory. Agents still running lose their network enforcement: call
// it only when uninstalling, once no agent runs. A missing pinDir is not
// an error.
func Uninstall(pinDir string) error {
	ents, err := os.ReadDir(pinDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrPin, err)
	}
	var errs []error
	for _, e := range ents {
		// Removing a link's pin drops the last reference the daemon did
		// not hold: the kernel detaches the program.
		if err := os.Remove(filepath.Join(pinDir, e.Name())); err != nil {
			errs = append(errs, err)
		}
	}
	if err := os.Remove(pinDir); err != nil && len(errs) == 0 {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: uninstall %s: %w", ErrPin, pinDir, err)
	}
	return nil
}
