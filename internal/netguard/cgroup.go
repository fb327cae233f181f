package netguard

import (
	"errors"
	"fmt"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// cgroupLevel checks that dir is a cgroup2 directory and returns its level
// in the hierarchy (0 for the mount root), counted by walking up while the
// parent is still on the same cgroup2 file system. Inside a cgroup namespace
// the count is relative to the namespace root and may be too small; the
// program then only loses its nested-cgroup fallback, it never allows more.
func cgroupLevel(dir string) (int, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", dir, err)
	}
	dev, err := cgroup2Dev(abs)
	if err != nil {
		return 0, err
	}
	level := 0
	for p := abs; p != "/"; p = filepath.Dir(p) {
		parent := filepath.Dir(p)
		pdev, err := cgroup2Dev(parent)
		if err != nil || pdev != dev {
			return level, nil
		}
		level++
	}
	return level, nil
}

func cgroup2Dev(path string) (uint64, error) {
	var fs unix.Statfs_t
	if err := unix.Statfs(path, &fs); err != nil {
		return 0, fmt.Errorf("%s: %w: %w", path, ErrNotCgroup2, err)
	}
	if fs.Type != unix.CGROUP2_SUPER_MAGIC {
		return 0, fmt.Errorf("%s: %w", path, ErrNotCgroup2)
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, fmt.Errorf("%s: %w: %w", path, ErrNotCgroup2, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return 0, fmt.Errorf("%s: %w", path, errors.Join(ErrNotCgroup2, errors.New("not a directory")))
	}
	return st.Dev, nil
}

// CgroupID returns the id bpf_get_current_cgroup_id reports for tasks in
// the cgroup2 directory dir: its inode number.
func CgroupID(dir string) (uint64, error) {
	if _, err := cgroup2Dev(dir); err != nil {
		return 0, err
	}
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return 0, fmt.Errorf("%s: %w", dir, err)
	}
	return st.Ino, nil
}
