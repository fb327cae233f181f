package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestMakeInstallPrefix: `make install` into another prefix leaves no
// /usr/local in what it installs: the example manifest runs the agent
// binaries from that prefix, the units start the binaries there.
func TestMakeInstallPrefix(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make not installed")
	}
	dir := t.TempDir()
	prefix := filepath.Join(dir, "opt", "coco")
	cmd := exec.Command("make", "-C", "../..", "install", "PREFIX="+prefix, "DESTDIR="+dir, "BIN="+filepath.Join(dir, "bin"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}
	for _, b := range []string{"bin/coconut", "bin/coconutd", "bin/coconut-tail", "libexec/coconut/dream-agent", "libexec/coconut/coconut-trampoline"} {
		if st, err := os.Stat(filepath.Join(prefix, b)); err != nil || st.Mode().Perm() != 0o755 {
			t.Errorf("%s: %v %v", b, st, err)
		}
	}
	for f, want := range map[string]string{
		"share/coconut/examples/dream-team/dream-team.yaml": "command: [" + prefix + "/libexec/coconut/dream-agent, --role, reviewer, --probe-ssh]",
		"lib/systemd/system/coconutd.service":               "ExecStart=" + prefix + "/bin/coconutd",
		"lib/systemd/user/coconut-notify.service":           "ExecStart=" + prefix + "/bin/coconut notify",
	} {
		b, err := os.ReadFile(filepath.Join(prefix, f))
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if strings.Contains(string(b), "/usr/local") || !strings.Contains(string(b), want) {
			t.Errorf("%s: want %q and no /usr/local:\n%s", f, want, b)
		}
	}
	// README's docs/ links resolve in the installed docs.
	readme, err := os.ReadFile(filepath.Join(prefix, "share/doc/coconut/README.md"))
	if err != nil {
		t.Fatal(err)
	}
	links := regexp.MustCompile(`\]\((docs/[^)#]+)`).FindAllStringSubmatch(string(readme), -1)
	if len(links) == 0 {
		t.Error("README links nothing under docs/")
	}
	for _, l := range links {
		if _, err := os.Stat(filepath.Join(prefix, "share/doc/coconut", l[1])); err != nil {
			t.Errorf("README links %s: %v", l[1], err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "etc/xdg/autostart/coconut-notify.desktop")); err != nil {
		t.Errorf("autostart entry under DESTDIR: %v", err)
	}
}
