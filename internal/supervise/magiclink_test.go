package supervise

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestMagicLinkOfOtherProcess: an emulated chmod through another process's
// /proc/PID/fd link is refused, even when that process is of the agent's
// uid and in another mount namespace, where the descriptor's name (the
// one the supervisor would decide on) lies inside the bundle while the
// real file is out of it. Through the agent's own /proc/self/fd it works.
func TestMagicLinkOfOtherProcess(t *testing.T) {
	needRoot(t)
	dir, bin := attrWorld(t)
	allowedDir := filepath.Join(dir, "A")
	mustDo(t, os.Mkdir(allowedDir, 0o755), os.Chown(allowedDir, agentUID, agentGID))
	own := filepath.Join(allowedDir, "f")
	agentFile(t, own, agentUID, agentGID, 0o644)

	// The outside process: same uid, its own mount namespace with a
	// tmpfs over the allowed directory, holding fd 3 on a file there.
	script := fmt.Sprintf(`mount -t tmpfs none %[1]s && echo x > %[1]s/f && chown %[2]d:%[3]d %[1]s/f && chmod 644 %[1]s/f &&
exec setpriv --reuid %[2]d --regid %[3]d --clear-groups sh -c 'exec 3<%[1]s/f; echo ready; exec sleep 60 3<&3'`, allowedDir, agentUID, agentGID)
	out := exec.Command("unshare", "-m", "--propagation", "private", "sh", "-c", script)
	stdout, err := out.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	out.Stderr = os.Stderr
	if err := out.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { out.Process.Kill(); out.Wait() })
	if line, _ := bufio.NewReader(stdout).ReadString('\n'); strings.TrimSpace(line) != "ready" {
		t.Fatalf("outside process: %q", line)
	}
	outsideFile := fmt.Sprintf("/proc/%d/root%s/f", out.Process.Pid, allowedDir)
	before := stateOf(t, outsideFile)

	d := newTestDecider(attrCaps(t, bin, allowedDir+"/**"))
	via := "/proc/" + strconv.Itoa(out.Process.Pid) + "/fd/3"
	got, _ := runAttrAgent(t, d, bin, "chmod:"+via, "keep:"+own, "chmod:/proc/self/fd/100")
	want := fmt.Sprintf("chmod:%s 134\nkeep:%s 0\nchmod:/proc/self/fd/100 0\n", via, own)
	if got != want {
		t.Errorf("agent:\n%s\nwant:\n%s", got, want)
	}
	if after := stateOf(t, outsideFile); after.mode != before.mode {
		t.Errorf("the outside process's file changed mode: %o -> %o", before.mode, after.mode)
	}
	if m := stateOf(t, own).mode & 0o777; m != 0o600 {
		t.Errorf("the agent's own file has mode %o, want 600", m)
	}
	var row bool
	for _, ev := range d.Events() {
		row = row || ev.Syscall == "chmod" && !ev.Allowed && ev.Errno == ECapability && ev.Object == via
	}
	if !row {
		t.Errorf("no deny row for %s: %+v", via, d.Events())
	}
}
