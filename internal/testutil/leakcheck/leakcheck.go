package leakcheck

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coconut-os/coconut/internal/cgroup"
	"github.com/coconut-os/coconut/internal/orphan"
)

// grace is how long leftover processes get to exit after the tests.
const grace = 20 * time.Second

// Main runs the tests and returns the exit code, 1 if they leaked.
func Main(m *testing.M) int {
	s, err := setup()
	if err != nil {
		fmt.Fprintln(os.Stderr, "leakcheck:", err)
		return 1
	}
	current = s
	code := m.Run()
	if s == nil {
		return code
	}
	leaks := s.waitLeaks()
	if len(leaks) > 0 {
		fmt.Fprintf(os.Stderr, "leakcheck: FAIL: the tests left behind (now removed): %d\n", len(leaks))
		for _, l := range leaks {
			fmt.Fprintln(os.Stderr, "  "+l.what)
		}
		s.remove(leaks)
		code = 1
	}
	if err := s.teardown(); err != nil {
		fmt.Fprintln(os.Stderr, "leakcheck:", err)
		code = 1
	}
	return code
}

// current is the running session, for this package's own test.
var current *session

// session is one test binary's private temporary directory and cgroup.
type session struct {
	pid    int
	tmp    string    // TMPDIR for the tests, only where cg is ""
	cg     string    // own unified cgroup, "" if not moved
	origCg string    // where the binary was
	v1     []v1Group // own groups in the v1 hierarchies (hybrid hosts)
	loc    orphan.Locations
	before map[string]bool // pin and cgroup paths there before the tests
}

// setup prepares the session; nil without root (tests that need the
// kernel skip then and make nothing).
func setup() (*session, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	s := &session{pid: os.Getpid()}
	var err error
	if s.loc, err = orphan.DefaultLocations(); err != nil {
		return nil, nil // no cgroup2: nothing coconut makes can leak
	}
	if err := s.ownCgroup(); err != nil {
		return nil, err
	}
	if err := s.ownV1(); err != nil {
		s.leaveV1()
		return nil, err
	}
	if s.cg == "" {
		// Not in a cgroup of its own: tell its daemons by their state
		// dirs, below a private TMPDIR (every t.TempDir is).
		if s.tmp, err = os.MkdirTemp("", "ct"+strconv.Itoa(s.pid)+"-"); err != nil {
			return nil, err
		}
		// Like /tmp: agents running as other users make dirs below.
		if err := os.Chmod(s.tmp, 0o1777); err != nil {
			return nil, err
		}
		os.Setenv("TMPDIR", s.tmp)
	}
	s.before = map[string]bool{}
	for _, p := range s.candidates() {
		s.before[p] = true
	}
	return s, nil
}

// ownCgroup moves the binary into testbin-PID below its cgroup, unless
// that cgroup hands cpu, memory and pids to its children (the daemon's
// quota would then run in v2 mode there and not in the new level).
func (s *session) ownCgroup() error {
	own, err := cgroup.ProcPath(0)
	if err != nil {
		return nil
	}
	parent := filepath.Join(s.loc.Unified, own)
	if b, err := os.ReadFile(filepath.Join(parent, "cgroup.subtree_control")); err == nil {
		f := strings.Fields(string(b))
		if slices.Contains(f, "cpu") && slices.Contains(f, "memory") && slices.Contains(f, "pids") {
			return nil
		}
	}
	dir := filepath.Join(parent, "testbin-"+strconv.Itoa(s.pid))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return fmt.Errorf("own cgroup: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(s.pid)), 0); err != nil {
		os.Remove(dir)
		return fmt.Errorf("own cgroup: %w", err)
	}
	s.cg, s.origCg = dir, parent
	return nil
}

func (s *session) teardown() error {
	errs := []error{s.leaveV1()}
	if s.cg != "" {
		if err := os.WriteFile(filepath.Join(s.origCg, "cgroup.procs"), []byte(strconv.Itoa(s.pid)), 0); err != nil {
			errs = append(errs, fmt.Errorf("leave own cgroup: %w", err))
		} else if err := os.Remove(s.cg); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove own cgroup: %w", err))
		}
	}
	if s.tmp != "" {
		errs = append(errs, os.RemoveAll(s.tmp))
	}
	return errors.Join(errs...)
}

// leak is one thing left behind and how to remove it.
type leak struct {
	what   string
	remove func(*slog.Logger) error
}

// waitLeaks looks for leaks until none is left or the grace period ends.
func (s *session) waitLeaks() []leak {
	deadline := time.Now().Add(grace)
	for {
		l := s.leaks()
		if len(l) == 0 || time.Now().After(deadline) {
			return l
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func (s *session) remove(leaks []leak) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, l := range leaks {
		if err := l.remove(log); err != nil {
			fmt.Fprintf(os.Stderr, "leakcheck: remove %s: %v\n", l.what, err)
		}
	}
}

// leaks lists what this binary left: processes first (they are ended
// before the cgroups and pins that hold them are removed).
func (s *session) leaks() []leak {
	var out []leak
	if s.cg != "" {
		pids, _ := procsBelow(s.cg)
		for _, pid := range pids {
			if pid == s.pid {
				continue
			}
			out = append(out, leak{what: fmt.Sprintf("process %d (%s) in %s", pid, cmdline(pid), s.cg), remove: func(*slog.Logger) error { return killPid(pid) }})
		}
	}
	entries, err := orphan.FindAll(s.loc)
	if err != nil {
		return append(out, leak{what: "cannot list coconut subtrees: " + err.Error(), remove: func(*slog.Logger) error { return nil }})
	}
	present := map[string]bool{}
	for _, o := range entries {
		present[o.Name] = true
	}
	if owners, err := orphan.Owners(s.loc.Registry); err == nil {
		for name, ow := range owners {
			if !present[name] && (s.below(ow.Cgroup) || s.tmp != "" && strings.HasPrefix(ow.StateDir, s.tmp+"/")) {
				out = append(out, leak{what: "owner record " + name + " of " + ow.StateDir, remove: func(*slog.Logger) error { return orphan.Forget(s.loc.Registry, name) }})
			}
		}
	}
	for _, o := range entries {
		if !s.mine(o) {
			continue
		}
		o := o
		out = append(out, leak{what: describe(o), remove: func(log *slog.Logger) error { return orphan.Teardown(s.loc, o, log) }})
	}
	for _, p := range s.pidRoots() {
		p := p
		out = append(out, leak{what: "cgroup " + p, remove: func(*slog.Logger) error { return killAndRemove(p) }})
	}
	out = append(out, s.v1Leaks()...)
	if s.cg != "" {
		ents, _ := os.ReadDir(s.cg)
		for _, e := range ents {
			if e.IsDir() && !orphan.IsSubtreeName(e.Name()) {
				p := filepath.Join(s.cg, e.Name())
				out = append(out, leak{what: "cgroup " + p, remove: func(*slog.Logger) error { return killAndRemove(p) }})
			}
		}
	}
	return out
}

// mine reports whether an entry is this binary's and new.
func (s *session) mine(o orphan.Orphan) bool {
	for _, p := range slices.Concat(o.Cgroups, o.V1Cgroups, []string{o.Pins}) {
		if p != "" && s.before[p] {
			return false // there before the tests started
		}
	}
	if s.cg != "" {
		for _, c := range o.Cgroups {
			if strings.HasPrefix(c, s.cg+"/") {
				return true
			}
		}
	}
	for _, c := range o.V1Cgroups {
		if s.underV1(c) {
			return true
		}
	}
	if s.tmp != "" && strings.HasPrefix(o.StateDir, s.tmp+"/") {
		return true
	}
	return strings.HasSuffix(o.Name, "-"+strconv.Itoa(s.pid))
}

// below reports whether p is below the binary's own unified cgroup.
func (s *session) below(p string) bool { return s.cg != "" && strings.HasPrefix(p, s.cg+"/") }

// candidates lists the paths that could be leaks, for the snapshot taken
// before the tests.
func (s *session) candidates() []string {
	var out []string
	if entries, err := orphan.FindAll(s.loc); err == nil {
		for _, o := range entries {
			out = append(append(append(out, o.Cgroups...), o.V1Cgroups...), o.Pins)
		}
	}
	return append(out, s.pidRoots()...)
}

// pidRoots lists the cgroup directories at the top of the unified
// hierarchy named …-PID that are not coconut subtrees (those are
// entries): the netguard tests' roots.
func (s *session) pidRoots() []string {
	var out []string
	ents, _ := os.ReadDir(s.loc.Unified)
	for _, e := range ents {
		p := filepath.Join(s.loc.Unified, e.Name())
		if e.IsDir() && strings.HasSuffix(e.Name(), "-"+strconv.Itoa(s.pid)) && !orphan.IsSubtreeName(e.Name()) && !s.before[p] {
			out = append(out, p)
		}
	}
	return out
}

func describe(o orphan.Orphan) string {
	var parts []string
	for _, c := range slices.Concat(o.Cgroups, o.V1Cgroups) {
		parts = append(parts, "cgroup "+c)
	}
	if o.Pins != "" {
		parts = append(parts, fmt.Sprintf("pins %s (%d programs)", o.Pins, len(o.Programs)))
	}
	n := 0
	for _, a := range o.Agents {
		n += len(a.PIDs)
	}
	if n > 0 {
		parts = append(parts, fmt.Sprintf("%d agent processes", n))
	}
	return o.Name + ": " + strings.Join(parts, ", ")
}
