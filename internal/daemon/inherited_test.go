package daemon

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestListenFDs(t *testing.T) {
	tests := []struct {
		name, pid, fds string
		want           int
	}{
		{"ours", "42", "2", 2},
		{"another process's", "41", "2", 0},
		{"no LISTEN_PID", "", "2", 0},
		{"no LISTEN_FDS", "42", "", 0},
		{"garbage", "42", "two", 0},
		{"negative", "42", "-1", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := listenFDs(tt.pid, tt.fds, 42); got != tt.want {
				t.Fatalf("listenFDs(%q, %q) = %d, want %d", tt.pid, tt.fds, got, tt.want)
			}
		})
	}
}

// fdState is "fd:open|cloexec|closed" for each descriptor 3..12.
func fdState() string {
	var out []string
	for fd := 3; fd <= 12; fd++ {
		s := "closed"
		if fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil {
			s = map[bool]string{true: "cloexec", false: "open"}[fl&unix.FD_CLOEXEC != 0]
		}
		out = append(out, fmt.Sprintf("%d:%s", fd, s))
	}
	return strings.Join(out, " ")
}

// TestCloseInherited runs a child that inherits a socket-activation
// descriptor on fd 3, a pipe on fd 4 and a file on fd 9 (fds 5..8 closed):
// CloseInherited keeps fd 3 (close-on-exec), closes 4 and 9 and says so,
// and leaves what the child's runtime opened itself.
func TestCloseInherited(t *testing.T) {
	if os.Getenv("DAEMON_TEST_INHERITED") == "1" {
		before := fdState()
		closed, err := closeInherited(1)
		fmt.Printf("before %s\nafter %s\nclosed %v err %v\n", before, fdState(), closed, err)
		return
	}
	f, err := os.Open(os.Args[0])
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
	cmd := exec.Command(os.Args[0], "-test.run=^TestCloseInherited$")
	cmd.Env = append(os.Environ(), "DAEMON_TEST_INHERITED=1")
	cmd.ExtraFiles = []*os.File{f, pr, nil, nil, nil, nil, f}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	// The child also inherits whatever this test process was started
	// with (the environment running the tests may leak some): every one
	// of those is closed too.
	lines := map[string]string{}
	for _, l := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(l, " "); ok {
			lines[k] = v
		}
	}
	if !strings.HasPrefix(lines["before"], "3:open 4:open ") || !strings.Contains(lines["before"], " 9:open") {
		t.Fatalf("the child did not inherit fds 3, 4 and 9:\n%s", out)
	}
	if !strings.HasPrefix(lines["after"], "3:cloexec 4:closed ") || strings.Contains(lines["after"], ":open") {
		t.Errorf("after CloseInherited, want fd 3 kept close-on-exec and nothing else inheritable:\n%s", out)
	}
	b, a := strings.Fields(lines["before"]), strings.Fields(lines["after"])
	for i := range b {
		if strings.HasSuffix(b[i], ":cloexec") && a[i] != b[i] {
			t.Errorf("the child's own descriptor %s became %s", b[i], a[i])
		}
	}
	closed := lines["closed"]
	if !strings.HasPrefix(closed, "[4 9") || !strings.HasSuffix(closed, "err <nil>") {
		t.Errorf("closed %q, want 4 and 9 (and what the test itself inherited), no error", closed)
	}
}
