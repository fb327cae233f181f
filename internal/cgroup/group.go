package cgroup

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Group is one agent's cgroup directory.
type Group struct {
	Path string
	ID   uint64
}

// Open returns the group at path.
func Open(path string) (*Group, error) {
	id, err := ID(path)
	if err != nil {
		return nil, err
	}
	return &Group{Path: path, ID: id}, nil
}

// FD opens the directory for CLONE_INTO_CGROUP. The caller closes it.
func (g *Group) FD() (int, error) {
	fd, err := unix.Open(g.Path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open cgroup %s: %w", g.Path, err)
	}
	return fd, nil
}

// Procs lists the pids in the group.
func (g *Group) Procs() ([]int, error) {
	b, err := os.ReadFile(filepath.Join(g.Path, "cgroup.procs"))
	if err != nil {
		return nil, fmt.Errorf("read cgroup.procs: %w", err)
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// Populated reports whether any process is in the group or below it.
func (g *Group) Populated() (bool, error) {
	v, err := g.events("populated")
	return v == "1", err
}

// Frozen reports whether the group is frozen.
func (g *Group) Frozen() (bool, error) {
	v, err := g.events("frozen")
	return v == "1", err
}

func (g *Group) events(key string) (string, error) {
	f, err := os.Open(filepath.Join(g.Path, "cgroup.events"))
	if err != nil {
		return "", fmt.Errorf("read cgroup.events: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), " ")
		if k == key {
			return v, nil
		}
	}
	return "", fmt.Errorf("cgroup.events has no %q", key)
}

// Kill sends SIGKILL to every process in the group and waits until it is
// empty. cgroup.kill (Linux 5.14) does it atomically, so a process forking
// in a loop cannot escape; on older kernels the group is frozen first (a
// frozen process cannot fork, and SIGKILL still ends it), then every pid
// is killed repeatedly.
func (g *Group) Kill(timeout time.Duration) error {
	err := os.WriteFile(filepath.Join(g.Path, "cgroup.kill"), []byte("1"), 0)
	if errors.Is(err, fs.ErrNotExist) {
		err = g.killEach()
	}
	if err != nil {
		return fmt.Errorf("kill cgroup %s: %w", g.Path, err)
	}
	deadline := time.Now().Add(timeout)
	for {
		pop, err := g.Populated()
		if err != nil || !pop {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cgroup %s still populated %v after kill", g.Path, timeout)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (g *Group) killEach() error {
	// Best effort: without cgroup.freeze (before 5.2) the repeated kills
	// below are all there is.
	if g.Freeze(true) == nil {
		defer g.Freeze(false)
	}
	for range 100 {
		pids, err := g.Procs()
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			return nil
		}
		for _, pid := range pids {
			if err := unix.Kill(pid, unix.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
				return err
			}
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}

// Freeze freezes (true) or thaws (false) the group through cgroup.freeze.
func (g *Group) Freeze(on bool) error {
	v := []byte("0")
	if on {
		v = []byte("1")
	}
	if err := os.WriteFile(filepath.Join(g.Path, "cgroup.freeze"), v, 0); err != nil {
		return fmt.Errorf("freeze cgroup %s: %w", g.Path, err)
	}
	return nil
}

// CPUUsec returns the group's total CPU time from cpu.stat.
func (g *Group) CPUUsec() (uint64, error) {
	b, err := os.ReadFile(filepath.Join(g.Path, "cpu.stat"))
	if err != nil {
		return 0, fmt.Errorf("read cpu.stat: %w", err)
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("usage_usec ")); ok {
			return strconv.ParseUint(string(v), 10, 64)
		}
	}
	return 0, errors.New("cpu.stat has no usage_usec")
}

// Remove deletes the (empty) directory, retrying briefly: the kernel may
// still be tearing down the last exited task.
func (g *Group) Remove() error {
	var err error
	for range 50 {
		err = os.Remove(g.Path)
		if err == nil || errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if !errors.Is(err, syscall.EBUSY) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	return fmt.Errorf("remove cgroup %s: %w", g.Path, err)
}
