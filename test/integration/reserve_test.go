package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestAuditReserveFullDisk (issue 19.5): coconutd's state directory is a
// small ext4 filesystem, loop-mounted from a file in this test's own
// temporary directory. Filled below the audit reserve, new spawns are
// refused with a clear error, a running agent's denies are still denied
// and counted, an allowed exec it repeats (one that would only be counted
// into an aggregate row, issue 19.1) is refused with ECAPABILITY instead
// of passing uncounted, and doctor names the cause; once space returns,
// spawning resumes.
func TestAuditReserveFullDisk(t *testing.T) {
	for _, tool := range []string{"mkfs.ext4", "losetup"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s (e2fsprogs, mount): .ci/run installs them", tool)
		}
	}
	img := filepath.Join(t.TempDir(), "state.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 96<<20); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-m", "0", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v %s", err, out)
	}
	conf := filepath.Join(t.TempDir(), "coconut.toml")
	if err := os.WriteFile(conf, []byte("audit_reserve = \"32M\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var state string
	e := newEnvWith(t, func(cmd *exec.Cmd) {
		for i, a := range cmd.Args {
			if a == "--state-dir" {
				state = cmd.Args[i+1]
			}
			if a == "--config" {
				cmd.Args[i+1] = conf
			}
		}
		if state == "" {
			t.Fatal("coconutd has no --state-dir")
		}
		os.MkdirAll(state, 0o700)
		if out, err := exec.Command("mount", "-o", "loop", img, state).CombinedOutput(); err != nil {
			t.Fatalf("mount the loop filesystem: %v %s", err, out)
		}
		// Detached at the end: the daemon may still hold files there.
		t.Cleanup(func() { unix.Unmount(state, unix.MNT_DETACH) })
	})
	e.demo()
	if doc := e.must("doctor"); !strings.Contains(doc, "reserve 32.0 MiB") {
		t.Fatalf("doctor does not show the reserve:\n%s", doc)
	}
	// An agent, from before the disk fills, looping on an allowed exec and
	// a denied open (the deny waits for the aggregate row that counts it,
	// which paces the loop).
	before := mustAID(t, e.must("agent", "run", "--name", "before", "--workdir", "/", "--cap", "fs.exec:/usr/bin/**",
		"--", "/bin/bash", "-c", `while :; do /usr/bin/true 2>/dev/null; echo "rc=$?"; : < /etc/shadow 2>/dev/null; done`))
	e.waitLog(before, "rc=0")

	// Fill the filesystem to 16 MiB free: below the 32 MiB reserve.
	var s unix.Statfs_t
	if err := unix.Statfs(state, &s); err != nil {
		t.Fatal(err)
	}
	fill := int64(s.Bfree)*s.Bsize - 16<<20
	filler := filepath.Join(state, "filler")
	f, err := os.OpenFile(filler, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Fallocate(int(f.Fd()), 0, 0, fill); err != nil {
		t.Fatalf("fallocate %d bytes: %v", fill, err)
	}
	f.Close()

	_, errs, code := e.cli("agent", "run", "--name", "after", "--workdir", "/", "--", "/usr/bin/true")
	if code == 0 || !strings.Contains(errs, "below the reserve") || !strings.Contains(errs, "spawns refused") {
		t.Errorf("spawn on a full disk: exit %d, %q; want it refused, naming the reserve", code, errs)
	}
	out, _, _ := e.cli("doctor")
	if !strings.Contains(out, "BELOW THE RESERVE") {
		t.Errorf("doctor does not name the full disk:\n%s", out)
	}
	// The running agent's denies are still denies, with their rows (the
	// headroom is for them), and counted.
	k0 := e.countersAgree(0)["kernel_denies"]
	time.Sleep(time.Second)
	if k1 := e.countersAgree(0)["kernel_denies"]; k1 <= k0 {
		t.Errorf("no denies recorded below the reserve: kernel_denies %d then %d", k0, k1)
	}
	// Its repeated exec would only be counted: on a chain below its
	// reserve it is refused (bash: 126), never let through uncounted.
	e.waitLog(before, "rc=126")
	e.must("agent", "kill", strconv.FormatUint(before, 10)) // its state row goes into the headroom

	// Space returns: spawning resumes.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	aid := mustAID(t, e.must("agent", "run", "--name", "again", "--workdir", "/", "--", "/usr/bin/true"))
	e.waitState(aid, "Terminated-clean")
	out, _, _ = e.cli("doctor")
	if strings.Contains(out, "BELOW THE RESERVE") {
		t.Errorf("doctor still reports a full disk after space returned:\n%s", out)
	}
	e.must("audit", "verify")
}
