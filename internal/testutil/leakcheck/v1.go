package leakcheck

import (
	"bufio"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/coconut-os/coconut/internal/cgroup"
	"github.com/coconut-os/coconut/internal/orphan"
)

// v1Group is the binary's own group in one v1 hierarchy and where it was.
type v1Group struct{ dir, orig string }

// ownV1 moves the binary into testbin-PID below its group in each v1
// hierarchy the quota package uses, so the v1 groups its daemons make are
// below it too.
func (s *session) ownV1() error {
	own := map[string]string{}
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) == 3 && f[1] != "" {
			for _, c := range strings.Split(f[1], ",") {
				own[c] = f[2]
			}
		}
	}
	mf, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer mf.Close()
	sc := bufio.NewScanner(mf)
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		pf, qf := strings.Fields(pre), strings.Fields(post)
		if !ok || len(pf) < 5 || len(qf) < 3 || qf[0] != "cgroup" {
			continue
		}
		opts := strings.Split(qf[2], ",")
		i := slices.IndexFunc(opts, func(o string) bool { return o == "cpu" || o == "memory" || o == "pids" })
		if i < 0 {
			continue
		}
		p, ok := own[opts[i]]
		if !ok {
			continue
		}
		rel, err := filepath.Rel(cgroup.UnescapeMount(pf[3]), p)
		if err != nil || strings.HasPrefix(rel, "..") {
			continue
		}
		parent := filepath.Join(cgroup.UnescapeMount(pf[4]), rel)
		dir := filepath.Join(parent, "testbin-"+strconv.Itoa(s.pid))
		if err := os.Mkdir(dir, 0o755); err != nil {
			return fmt.Errorf("own v1 %s group: %w", opts[i], err)
		}
		s.v1 = append(s.v1, v1Group{dir: dir, orig: parent})
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(s.pid)), 0); err != nil {
			return fmt.Errorf("own v1 %s group: %w", opts[i], err)
		}
	}
	return sc.Err()
}

// leaveV1 moves the binary back and removes its v1 groups.
func (s *session) leaveV1() error {
	var first error
	for _, g := range s.v1 {
		if err := os.WriteFile(filepath.Join(g.orig, "cgroup.procs"), []byte(strconv.Itoa(s.pid)), 0); err != nil && first == nil {
			first = fmt.Errorf("leave v1 group %s: %w", g.dir, err)
			continue
		}
		if err := os.Remove(g.dir); err != nil && first == nil {
			first = fmt.Errorf("remove v1 group %s: %w", g.dir, err)
		}
	}
	return first
}

// v1Leaks lists the directories left below the binary's v1 groups that
// are not coconut subtrees (those are entries).
func (s *session) v1Leaks() []leak {
	var out []leak
	for _, g := range s.v1 {
		ents, _ := os.ReadDir(g.dir)
		for _, e := range ents {
			if e.IsDir() && !orphan.IsSubtreeName(e.Name()) {
				p := filepath.Join(g.dir, e.Name())
				out = append(out, leak{what: "v1 cgroup " + p, remove: func(*slog.Logger) error { return killAndRemove(p) }})
			}
		}
	}
	return out
}

// underV1 reports whether p is below one of the binary's v1 groups.
func (s *session) underV1(p string) bool {
	for _, g := range s.v1 {
		if strings.HasPrefix(p, g.dir+"/") {
			return true
		}
	}
	return false
}
