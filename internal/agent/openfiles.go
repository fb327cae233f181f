package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/coconut-os/coconut/internal/capability"
)

// openFiles lists the files the processes of the cgroup at path hold open
// (descriptors, and the running program for fs.exec) that one of revoked
// matches. A process that exits while it is read is skipped; any other
// failure is an error, so the caller fails closed.
func openFiles(path string, revoked []capability.Cap) ([]string, error) {
	b, err := os.ReadFile(filepath.Join(path, "cgroup.procs"))
	if err != nil {
		return nil, fmt.Errorf("read cgroup.procs: %w", err)
	}
	var out []string
	seen := map[string]bool{}
	match := func(p string, exec bool) {
		if seen[p] || !filepath.IsAbs(p) {
			return
		}
		for _, c := range revoked {
			if (c.Verb != "exec" || exec) && c.MatchPath(p) {
				seen[p] = true
				out = append(out, p)
				return
			}
		}
	}
	for _, f := range strings.Fields(string(b)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("cgroup.procs: %q", f)
		}
		dir := fmt.Sprintf("/proc/%d", pid)
		if exe, err := os.Readlink(dir + "/exe"); err == nil {
			match(exe, true)
		}
		ents, err := os.ReadDir(dir + "/fd")
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("list descriptors of %d: %w", pid, err)
		}
		for _, ent := range ents {
			if t, err := os.Readlink(dir + "/fd/" + ent.Name()); err == nil {
				// A deleted file keeps its old name with a suffix; it is
				// still open under that scope.
				match(strings.TrimSuffix(t, " (deleted)"), false)
			}
		}
	}
	return out, nil
}
