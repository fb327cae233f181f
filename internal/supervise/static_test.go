package supervise

import (
	"os"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// floorEnv lists, separated by ":", the trees a static test agent may read
// under its Landlock domain (the static mode's floor, built from the
// bundle); empty: no domain.
const floorEnv = "COCONUT_SUPERVISE_FLOOR"

// applyReadFloor restricts file reads of this thread (and what it execs)
// to the trees listed: the part of the floor that static mode relies on.
func applyReadFloor(trees []string) error {
	const handled = unix.LANDLOCK_ACCESS_FS_READ_FILE | unix.LANDLOCK_ACCESS_FS_READ_DIR
	attr := unix.LandlockRulesetAttr{Handled_access_fs: handled}
	fd, _, e := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, uintptr(unsafe.Pointer(&attr)), 24 /* ABI 1-7 fields */, 0)
	if e != 0 {
		return e
	}
	defer unix.Close(int(fd))
	for _, t := range trees {
		pfd, err := unix.Open(t, unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		access := uint64(handled)
		var st unix.Stat_t
		if unix.Fstat(pfd, &st) == nil && st.Mode&unix.S_IFMT != unix.S_IFDIR {
			access = unix.LANDLOCK_ACCESS_FS_READ_FILE
		}
		rule := unix.LandlockPathBeneathAttr{Allowed_access: access, Parent_fd: int32(pfd)}
		_, _, e := unix.Syscall6(unix.SYS_LANDLOCK_ADD_RULE, fd, unix.LANDLOCK_RULE_PATH_BENEATH, uintptr(unsafe.Pointer(&rule)), 0, 0, 0)
		unix.Close(pfd)
		if e != 0 {
			return e
		}
	}
	if _, _, e := unix.Syscall(unix.SYS_LANDLOCK_RESTRICT_SELF, fd, 0, 0); e != 0 {
		return e
	}
	return nil
}

func floorTrees() []string {
	if v := os.Getenv(floorEnv); v != "" {
		return strings.Split(v, ":")
	}
	return nil
}

// TestStaticAgent: under the static filter, read-only opens are not
// trapped: the Landlock floor (the bundle) decides them with EACCES and no
// event; writes, creations, execs and refusals still go to the supervisor.
func TestStaticAgent(t *testing.T) {
	needRoot(t)
	dir := tree(t)
	a, dn := dir+"/allowed", dir+"/denied"
	tests := []struct {
		name, op string
		want     int
	}{
		{"read allowed", "read:" + a + "/f", 0},
		{"read denied by the floor", "read:" + dn + "/f", int(unix.EACCES)},
		{"read through symlink denied by the floor", "read:" + a + "/link", int(unix.EACCES)},
		{"proc root denied by the floor", "read:/proc/self/root" + dn + "/f", int(unix.EACCES)},
		// Landlock decides on the path walked, not on the inode: a hard
		// link made outside the agent reads through (docs/security.md).
		{"hard link made outside reads through", "read:" + a + "/hardlink", 0},
		{"openat dirfd allowed", "openat:" + a + ":f", 0},
		{"openat2 still supervised", "openat2:" + dn + ":f", 134},
		{"create allowed", "write:" + a + "/new", 0},
		{"create denied", "write:" + dn + "/new", 134},
		{"exec denied", "exec:" + dn + "/true", 134},
		{"mount", "mount:" + dir + "/mnt", 134},
		{"unshare user", "unshare-user", 134},
	}
	ops := make([]string, len(tests))
	for i, tt := range tests {
		ops[i] = tt.op
	}
	d := newTestDecider(bundle(t, dir))
	got, _ := runStatic(t, d, []string{a, "/usr/lib", "/etc/ld.so.cache", self(t)}, ops...)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if n, ok := got[tt.op]; !ok || n != tt.want {
				t.Errorf("%s: errno %d (%v), want %d", tt.op, n, ok, tt.want)
			}
		})
	}
	t.Run("events", func(t *testing.T) {
		for _, ev := range d.Events() {
			if ev.Access == Read && ev.Syscall != "openat2" {
				t.Errorf("a read-only open reached the supervisor: %+v", ev)
			}
		}
	})
}

func runStatic(t testing.TB, d Decider, floor []string, ops ...string) (map[string]int, *Server) {
	t.Helper()
	old := os.Getenv(staticEnv)
	os.Setenv(staticEnv, "1")
	os.Setenv(floorEnv, strings.Join(floor, ":"))
	defer func() {
		os.Setenv(staticEnv, old)
		os.Unsetenv(floorEnv)
	}()
	return runAgent(t, AgentInfo{AID: 43}, d, ops...)
}
