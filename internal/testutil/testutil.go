// Package testutil holds the checks tests share. A test that needs root
// or a kernel feature calls one of them first: it skips with a one-line
// reason where the need is not met, and nothing here fakes the feature.
// It imports only the standard library and x/sys, so any package's tests
// can use it.
package testutil

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// RequireRoot skips tb unless it runs as root; why says what root is
// needed for ("cgroup BPF", "to create cgroups").
func RequireRoot(tb testing.TB, why string) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("needs root: " + why)
	}
}

// RequireCgroup2 skips tb unless a cgroup2 hierarchy is mounted at dir
// (usually /sys/fs/cgroup).
func RequireCgroup2(tb testing.TB, dir string) {
	tb.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		tb.Skipf("no cgroup2 hierarchy at %s: %v", dir, err)
	}
	if st.Type != unix.CGROUP2_SUPER_MAGIC {
		tb.Skipf("no cgroup2 hierarchy at %s", dir)
	}
}

// RequireKernel skips tb on a kernel older than major.minor; feature names
// what needs it ("file_setattr").
func RequireKernel(tb testing.TB, major, minor int, feature string) {
	tb.Helper()
	got, err := KernelRelease()
	if err != nil {
		tb.Fatalf("kernel release: %v", err)
	}
	if got[0] < major || got[0] == major && got[1] < minor {
		tb.Skipf("%s needs Linux %d.%d (this is %d.%d)", feature, major, minor, got[0], got[1])
	}
}

// KernelRelease is the running kernel's major and minor version.
func KernelRelease() ([2]int, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return [2]int{}, err
	}
	rel := unix.ByteSliceToString(u.Release[:])
	parts := strings.SplitN(rel, ".", 3)
	if len(parts) < 2 {
		return [2]int{}, errors.New("release " + rel + " is not major.minor")
	}
	major, err := strconv.Atoi(parts[0])
	if err != nil {
		return [2]int{}, err
	}
	minor, err := strconv.Atoi(strings.TrimRightFunc(parts[1], func(r rune) bool { return r < '0' || r > '9' }))
	if err != nil {
		return [2]int{}, err
	}
	return [2]int{major, minor}, nil
}

// RequireCommand skips tb unless name is on PATH; install says how to get
// it ("apt-get install swtpm swtpm-tools; .ci/run does").
func RequireCommand(tb testing.TB, name, install string) string {
	tb.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		tb.Skipf("%s not installed (%s)", name, install)
	}
	return path
}
