// Package swtpm starts a real software TPM (swtpm) for tests: the anchor
// package's, and the integration tests of coconut init and coconutd.
package swtpm

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coconut-os/coconut/internal/testutil"
)

// Start starts a fresh swtpm on a unix socket in a temporary directory
// and returns its data socket path; it is stopped at cleanup (register
// it before whatever uses the TPM, so that it is stopped after). It
// skips the test where swtpm is not installed.
func Start(t testing.TB) string {
	t.Helper()
	bin := testutil.RequireCommand(t, "swtpm", "apt-get install swtpm swtpm-tools; .ci/run does")
	dir := t.TempDir()
	sock := filepath.Join(dir, "sock")
	pidFile := filepath.Join(dir, "pid")
	cmd := exec.Command(bin, "socket", "--tpm2", "--tpmstate", "dir="+dir,
		"--server", "type=unixio,path="+sock, "--ctrl", "type=unixio,path="+filepath.Join(dir, "ctrl"),
		"--flags", "not-need-init,startup-clear", "--daemon", "--pid", "file="+pidFile)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("start swtpm: %v: %s", err, out)
	}
	t.Cleanup(func() {
		b, err := os.ReadFile(pidFile)
		if err != nil {
			return
		}
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			syscall.Kill(pid, syscall.SIGTERM)
		}
	})
	for i := 0; i < 100; i++ {
		if _, err := os.Stat(sock); err == nil {
			return sock
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("swtpm socket did not appear")
	return ""
}
