package launch

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/coconut-os/coconut/internal/testutil"
)

// inheritedFDs lists, comma-separated, the descriptors this process holds
// without FD_CLOEXEC: at the start of a program, exactly those its exec
// left open (a descriptor the Go runtime opened since is O_CLOEXEC, and
// one marked close-on-exec before the exec is gone).
func inheritedFDs() string {
	var open []string
	for fd := 0; fd < 1024; fd++ {
		fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err == nil && fl&unix.FD_CLOEXEC == 0 {
			open = append(open, strconv.Itoa(fd))
		}
	}
	return strings.Join(open, ",")
}

// inherit puts f on descriptor fd of this process without FD_CLOEXEC, as a
// shell redirection would leave it for a program it starts.
func inherit(t *testing.T, f *os.File, fd int) {
	t.Helper()
	if err := unix.Dup3(int(f.Fd()), fd, 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
}

// TestTrampolineClosesInherited starts agents from a process that holds a
// secret file on fd 40 and a pipe with data on fd 41, both inheritable:
// the agent's program holds only 0, 1 and 2 (and the exec memfd when a
// script needs it), and reading either number fails with EBADF.
func TestTrampolineClosesInherited(t *testing.T) {
	testutil.RequireRoot(t, "to switch users and create cgroups")
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("inherited secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(secret)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	pw.Write([]byte("piped secret"))
	inherit(t, f, 40)
	inherit(t, pr, 41)
	// Non-blocking (after Fd, which makes it blocking): if a regression
	// let the first agent drain the pipe, the next one's read fails with
	// EAGAIN instead of hanging the test.
	if err := syscall.SetNonblock(41, true); err != nil {
		t.Fatal(err)
	}

	self, _ := os.Executable()
	tests := []struct {
		name string
		keep bool // Spec.KeepExecFD: a "#!" script run directly
		want string
	}{
		{"program", false, "0,1,2"},
		{"script run directly", true, "0,1,2," + strconv.Itoa(fdExec)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _, err := runSpec(t, self, func(s *Spec) {
				s.Env = append(s.Env, "LAUNCH_TEST_PROBE=1")
				s.Dir = "/"
				s.KeepExecFD = tt.keep
			}, "fds", "-", "readfd", "40", "readfd", "41")
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range []string{"fds " + tt.want + "\n", "readfd 40 errno=9\n", "readfd 41 errno=9\n"} {
				if !strings.Contains(out, w) {
					t.Errorf("want %q in:\n%s", w, out)
				}
			}
		})
	}
}

// TestCloseAtExecKeeps checks the gaps between kept descriptors are marked and
// the kept ones are not, in a child so the test process keeps its own.
func TestCloseAtExecKeeps(t *testing.T) {
	if os.Getenv("LAUNCH_TEST_CLOSEATEXEC") == "1" {
		if err := closeAtExec([]int{0, 1, 2, 5, 7}); err != nil {
			t.Fatal(err)
		}
		t.Logf("left %s", inheritedFDs())
		if got := inheritedFDs(); got != "0,1,2,5,7" {
			t.Fatalf("not close-on-exec after closeAtExec(0,1,2,5,7): %s", got)
		}
		return
	}
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer devnull.Close()
	cmd := execSelf(t, "TestCloseAtExecKeeps", "LAUNCH_TEST_CLOSEATEXEC=1")
	// Descriptors 3..9 and 50 in the child, all inheritable.
	for i := 0; i < 7; i++ {
		cmd.ExtraFiles = append(cmd.ExtraFiles, devnull)
	}
	for len(cmd.ExtraFiles) < 47 {
		cmd.ExtraFiles = append(cmd.ExtraFiles, nil)
	}
	cmd.ExtraFiles = append(cmd.ExtraFiles, devnull)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

// execSelf is the test binary running only the named test, with env added.
func execSelf(t *testing.T, name string, env ...string) *exec.Cmd {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, "-test.run=^"+name+"$", "-test.v")
	cmd.Env = append(os.Environ(), env...)
	return cmd
}
