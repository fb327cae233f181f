package supervise

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestEmulatedCallWithNamespaceCaps: a caller holding capabilities, here
// as root of a user namespace of its own, is never emulated: its
// capabilities count in that namespace only, and the supervisor would
// apply them in its own. chmod of a file of another user (which the
// kernel refuses such a caller, the owner being unmapped) gets
// ECAPABILITY and the file keeps its mode.
func TestEmulatedCallWithNamespaceCaps(t *testing.T) {
	needRoot(t)
	dir, bin := attrWorld(t)
	allowedDir := filepath.Join(dir, "A")
	mustDo(t, os.Mkdir(allowedDir, 0o755), os.Chown(allowedDir, agentUID, agentGID))
	other := filepath.Join(allowedDir, "other")
	agentFile(t, other, otherUID, otherUID, 0o644)
	// The trampoline must be executable by the mapped user.
	tramp := filepath.Join(dir, "trampoline")
	copyExe(t, self(t), tramp)

	d := newTestDecider(attrCaps(t, bin, allowedDir+"/**"))
	sup, ag := socketPair(t)
	defer sup.Close()
	var out, errb bytes.Buffer
	cmd := exec.Command(tramp, bin, "chmod:"+other)
	cmd.Env = []string{modeEnv + "=trampoline"}
	cmd.ExtraFiles = []*os.File{ag}
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWUSER,
		// uid 0 of the namespace (host agentUID): full capabilities there.
		Credential:  &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: true},
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: agentUID, Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: agentGID, Size: 1}},
	}
	superviseToEnd(t, cmd, sup, ag, 45, d, &out, &errb)
	got := attropsDone(t, out.String())
	if want := fmt.Sprintf("chmod:%s 134\n", other); got != want {
		t.Errorf("agent: %q, want %q", got, want)
	}
	if m := stateOf(t, other).mode & 0o777; m != 0o644 {
		t.Errorf("the other user's file has mode %o", m)
	}
	var row bool
	for _, ev := range d.Events() {
		row = row || ev.Syscall == "chmod" && !ev.Allowed && strings.Contains(ev.Object, "capabilities")
	}
	if !row {
		t.Errorf("no deny row: %+v", d.Events())
	}
}

func copyExe(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}
