package quota

import (
	"github.com/coconut-os/coconut/internal/cgroup"

	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Mode says where the controllers are.
type Mode string

const (
	// ModeV2: cpu, memory and pids are enabled in the unified hierarchy.
	ModeV2 Mode = "v2"
	// ModeV1: a hybrid host; the controllers are v1 hierarchies.
	ModeV1 Mode = "v1"
	// ModeNone: no controller is usable; every limit is refused.
	ModeNone Mode = "none"
)

// v1Controllers are the v1 hierarchies coconut uses. Freezing goes through
// the unified cgroup.freeze, which works on hybrid hosts too, and CPU time
// is read from the unified cpu.stat, so neither freezer nor cpuacct is
// needed.
var v1Controllers = []string{"cpu", "memory", "pids"}

// Controller applies budgets below one coconut subtree.
type Controller struct {
	mode    Mode
	why     string // why the better mode was not used
	unified string // the subtree's directory in the unified hierarchy
	mount   string // where cgroup2 is mounted
	io      bool   // the io controller is enabled (v2 only)
	// v1: controller name -> its mount point and the subtree's path
	// relative to that mount (the daemon's own v1 cgroup + subtree name).
	v1 map[string]v1Dir
}

type v1Dir struct{ mount, rel string }

// New finds the controllers for the subtree whose unified-hierarchy
// directory is unifiedRoot (mounted at mount). It prefers cgroup v2
// controllers, then v1 directories named like the subtree inside the
// daemon's own v1 cgroups; with neither it returns a ModeNone controller
// (not an error) that refuses every limit, and Why says what was missing.
func New(mount, unifiedRoot string) (*Controller, error) {
	c, v2err, err := newUnified(mount, unifiedRoot)
	if err != nil || v2err == nil {
		return c, err
	}
	dirs, v1err := findV1("/proc/self/mountinfo", "/proc/self/cgroup", filepath.Base(unifiedRoot))
	if v1err == nil {
		c.mode, c.v1 = ModeV1, dirs
		c.why = fmt.Sprintf("cgroup v2 controllers: %v; using v1 hierarchies", v2err)
		return c, nil
	}
	c.mode = ModeNone
	c.why = fmt.Sprintf("cgroup v2 controllers: %v; v1: %v", v2err, v1err)
	return c, nil
}

// NewV2 is New without the v1 fallback: cgroup v2 controllers enabled in
// unifiedRoot (ModeV2), or ModeNone. The v1 hierarchies New falls back to
// are found through /proc/self, the machine's own, whatever tree it was
// given: a tree that is not the machine's (a test's directory, laid out
// as a fake cgroupfs) must use NewV2, or limits meant for it would create
// groups in the machine's v1 hierarchies. What a NewV2 controller and its
// groups write lies below unifiedRoot.
func NewV2(mount, unifiedRoot string) (*Controller, error) {
	c, v2err, err := newUnified(mount, unifiedRoot)
	if err != nil || v2err == nil {
		return c, err
	}
	c.mode = ModeNone
	c.why = fmt.Sprintf("cgroup v2 controllers: %v; v1 not looked for", v2err)
	return c, nil
}

// newUnified tries the unified hierarchy: a ModeV2 controller and a nil
// v2err, or a controller with no mode yet and why v2 was not usable. err
// is a subtree that cannot be one.
func newUnified(mount, unifiedRoot string) (c *Controller, v2err, err error) {
	c = &Controller{unified: unifiedRoot, mount: mount}
	name := filepath.Base(unifiedRoot)
	if name == "." || name == "/" || name == "" {
		return nil, nil, fmt.Errorf("%w: subtree %q", ErrInvalid, unifiedRoot)
	}
	if v2err = c.enableV2(); v2err == nil {
		c.mode = ModeV2
	}
	return c, v2err, nil
}

// Mode reports where the controllers are.
func (c *Controller) Mode() Mode { return c.mode }

// Why explains a mode other than ModeV2.
func (c *Controller) Why() string { return c.why }

// enableV2 turns on cpu, memory, pids (and io if present) for the
// children of the subtree. It needs them available in the subtree, which
// requires a delegating parent whose own processes live in a leaf.
func (c *Controller) enableV2() error {
	have, err := readControllers(filepath.Join(c.unified, "cgroup.controllers"))
	if err != nil {
		return err
	}
	var missing []string
	for _, n := range v1Controllers {
		if !slices.Contains(have, n) {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s not delegated to %s", strings.Join(missing, ", "), c.unified)
	}
	want := "+cpu +memory +pids"
	if slices.Contains(have, "io") {
		want += " +io"
		c.io = true
	}
	if err := os.WriteFile(filepath.Join(c.unified, "cgroup.subtree_control"), []byte(want), 0); err != nil {
		c.io = false
		return fmt.Errorf("enable %q in %s: %w", want, c.unified, err)
	}
	return nil
}

func readControllers(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return strings.Fields(string(b)), nil
}

// findV1 locates each v1 controller's mount and the daemon's own group in
// it, and names the subtree there.
func findV1(mountinfo, selfCgroup, name string) (map[string]v1Dir, error) {
	mounts, err := v1Mounts(mountinfo)
	if err != nil {
		return nil, err
	}
	own, err := ownV1(selfCgroup)
	if err != nil {
		return nil, err
	}
	out := map[string]v1Dir{}
	for _, n := range v1Controllers {
		m, ok := mounts[n]
		if !ok {
			return nil, fmt.Errorf("no v1 %s hierarchy mounted", n)
		}
		p, ok := own[n]
		if !ok {
			return nil, fmt.Errorf("/proc/self/cgroup names no v1 %s group", n)
		}
		// Inside a cgroup namespace the mount's root is a prefix of the
		// path /proc/self/cgroup reports; paths below the mount are
		// relative to that root.
		rel, err := filepath.Rel(m.root, p)
		if err != nil || strings.HasPrefix(rel, "..") {
			return nil, fmt.Errorf("v1 %s group %s is outside its mount root %s", n, p, m.root)
		}
		if strings.Contains(rel, "/agent-") {
			return nil, fmt.Errorf("coconutd runs inside agent v1 %s group %s: refusing to nest", n, p)
		}
		out[n] = v1Dir{mount: m.point, rel: filepath.Join("/", rel, name)}
	}
	return out, nil
}

type v1Mount struct{ point, root string }

// v1Mounts maps each v1 controller to its mount from a mountinfo file.
func v1Mounts(path string) (map[string]v1Mount, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	out := map[string]v1Mount{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		pf, qf := strings.Fields(pre), strings.Fields(post)
		if len(pf) < 5 || len(qf) < 3 || qf[0] != "cgroup" {
			continue
		}
		for _, opt := range strings.Split(qf[2], ",") {
			if slices.Contains(v1Controllers, opt) {
				out[opt] = v1Mount{point: cgroup.UnescapeMount(pf[4]), root: cgroup.UnescapeMount(pf[3])}
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return out, nil
}

// ownV1 maps each v1 controller to the caller's group from /proc/self/cgroup
// ("4:memory:/a/b", "2:cpu,cpuacct:/").
func ownV1(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return parseProcCgroup(string(b))
}

// parseProcCgroup parses the text of /proc/PID/cgroup into controller ->
// path for the v1 lines. A malformed line is an error, not skipped.
func parseProcCgroup(text string) (map[string]string, error) {
	out := map[string]string{}
	for i, line := range strings.Split(text, "\n") {
		if line == "" {
			continue
		}
		id, rest, ok1 := strings.Cut(line, ":")
		ctrls, p, ok2 := strings.Cut(rest, ":")
		if _, err := strconv.ParseUint(id, 10, 32); !ok1 || !ok2 || err != nil || !strings.HasPrefix(p, "/") {
			return nil, fmt.Errorf("%w: /proc/self/cgroup line %d: %q", ErrInvalid, i+1, line)
		}
		if ctrls == "" {
			continue // the unified line "0::/"
		}
		for _, n := range strings.Split(ctrls, ",") {
			out[n] = p
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no v1 hierarchies in /proc/self/cgroup")
	}
	return out, nil
}
