package orphan

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// inspect fills in what the entry holds: agents and their live
// processes, the programs behind its pinned links, and the processes
// that hold its pinned maps open.
func (o *Orphan) inspect() error {
	for _, root := range o.Cgroups {
		// Other test runs and daemons make and remove cgroups all the
		// time: one that vanishes (ENOENT, ENODEV while dying) while we
		// look holds nothing.
		ents, _ := os.ReadDir(root)
		for _, e := range ents {
			aid, ok := parseAgentDir(e.Name())
			if !ok || !e.IsDir() {
				continue
			}
			p := filepath.Join(root, e.Name())
			pids, err := procsBelow(p)
			if err != nil {
				return err
			}
			o.Agents = append(o.Agents, Agent{AID: aid, Cgroup: p, PIDs: pids})
		}
	}
	sort.Slice(o.Agents, func(i, j int) bool { return o.Agents[i].AID < o.Agents[j].AID })
	if o.Pins == "" {
		return nil
	}
	var err error
	if o.Programs, err = pinnedPrograms(o.Pins); err != nil {
		return err
	}
	o.HeldBy, err = mapHolders(o.Pins)
	return err
}

func parseAgentDir(name string) (uint64, bool) {
	s, ok := strings.CutPrefix(name, "agent-")
	if !ok {
		return 0, false
	}
	aid, err := strconv.ParseUint(s, 10, 64)
	return aid, err == nil && aid != 0 && strconv.FormatUint(aid, 10) == s
}

// procsBelow lists the pids in dir's cgroup.procs and in every cgroup
// below it (an agent may make child groups).
func procsBelow(dir string) ([]int, error) {
	pids := []int{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil // vanished while we looked
		}
		b, err := os.ReadFile(filepath.Join(p, "cgroup.procs"))
		if err != nil {
			return nil
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				pids = append(pids, pid)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("processes in %s: %w", dir, err)
	}
	sort.Ints(pids)
	return pids, nil
}

// pinnedPrograms describes the programs attached through the links
// pinned in dir (map pins are skipped).
func pinnedPrograms(dir string) ([]Program, error) {
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	out := []Program{}
	for _, e := range ents {
		l, err := link.LoadPinnedLink(filepath.Join(dir, e.Name()), nil)
		if err != nil {
			continue // a map, or not a link this kernel describes
		}
		info, err := l.Info()
		l.Close()
		if err != nil {
			continue
		}
		p := Program{Pin: e.Name(), ID: uint32(info.Program)}
		if cg := info.Cgroup(); cg != nil {
			p.Attach = ebpf.AttachType(cg.AttachType).String()
		}
		if prog, err := ebpf.NewProgramFromID(info.Program); err == nil {
			if pi, err := prog.Info(); err == nil {
				p.Name = pi.Name
			}
			prog.Close()
		}
		out = append(out, p)
	}
	return out, nil
}

// mapHolders returns the processes (other than this one) that hold a map
// pinned in dir open: a running daemon, or a test, still uses the guard.
func mapHolders(dir string) ([]int, error) {
	ids := map[uint32]bool{}
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	for _, e := range ents {
		m, err := ebpf.LoadPinnedMap(filepath.Join(dir, e.Name()), &ebpf.LoadPinOptions{ReadOnly: true})
		if err != nil {
			continue // a link
		}
		if info, err := m.Info(); err == nil {
			if id, ok := info.ID(); ok {
				ids[uint32(id)] = true
			}
		}
		m.Close()
	}
	if len(ids) == 0 {
		return nil, nil
	}
	// Another scan (a doctor, a leak check) holds the maps for a moment
	// while it looks, as this one just did: only a process seen holding
	// them twice, a little apart, counts.
	first, err := processesHolding(ids)
	if err != nil || len(first) == 0 {
		return first, err
	}
	time.Sleep(20 * time.Millisecond)
	again, err := processesHolding(ids)
	if err != nil {
		return nil, err
	}
	var out []int
	for _, pid := range again {
		if slices.Contains(first, pid) {
			out = append(out, pid)
		}
	}
	return out, nil
}

// processesHolding scans /proc/*/fd for descriptors of the maps ids.
func processesHolding(ids map[uint32]bool) ([]int, error) {
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	self := os.Getpid()
	var out []int
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || pid == self {
			continue
		}
		if holds(pid, ids) {
			out = append(out, pid)
		}
	}
	return out, nil
}

func holds(pid int, ids map[uint32]bool) bool {
	base := "/proc/" + strconv.Itoa(pid)
	fds, err := os.ReadDir(base + "/fd")
	if err != nil {
		return false // gone, or a kernel thread
	}
	for _, fd := range fds {
		if t, err := os.Readlink(base + "/fd/" + fd.Name()); err != nil || t != "anon_inode:bpf-map" {
			continue
		}
		if id, ok := fdinfoMapID(base + "/fdinfo/" + fd.Name()); ok && ids[id] {
			return true
		}
	}
	return false
}

func fdinfoMapID(path string) (uint32, bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "map_id:"); ok {
			id, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
			return uint32(id), err == nil
		}
	}
	return 0, false
}
