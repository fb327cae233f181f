package image

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestFirstbootRefusesBadPreseed runs the image's first-boot script on the
// host with its paths moved into a temporary directory: a bad preseed is
// refused before coconut init runs, with the fix on the console and in
// the error file doctor and the user read. (Booting the image is the
// image-tagged test; this part needs no qemu.)
func TestFirstbootRefusesBadPreseed(t *testing.T) {
	script, err := filepath.Abs("../../image/rootfs/usr/libexec/coconut-image/firstboot")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, cmdline, preseed, want string
	}{
		{"unknown key on the command line", "ro coconut.colour=blue", "", `unknown preseed key "colour" from the kernel command line`},
		{"unknown key in the file", "ro", "profile=server\nflavour=mint\n", `unknown preseed key "flavour" from`},
		{"not KEY=VALUE", "ro", "workstation\n", `preseed line "workstation"`},
		{"bad user name", "ro coconut.user=Bad;Name", "", `user name "Bad;Name" is not a valid login`},
		{"user name too long", "ro coconut.user=" + strings.Repeat("a", 33), "", "is not a valid login"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cmdline := filepath.Join(dir, "cmdline")
			if err := os.WriteFile(cmdline, []byte(tc.cmdline+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			preseed := filepath.Join(dir, "coconut-preseed")
			if tc.preseed != "" {
				if err := os.WriteFile(preseed, []byte(tc.preseed), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			state := filepath.Join(dir, "state")
			cmd := exec.Command("sh", script)
			// No coconut on PATH: a preseed that got as far as init would
			// fail differently from what is wanted here.
			cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "COCONUT_FIRSTBOOT_CMDLINE=" + cmdline,
				"COCONUT_FIRSTBOOT_PRESEED=" + preseed, "COCONUT_FIRSTBOOT_STATE=" + state}
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("firstboot accepted it:\n%s", out)
			}
			if !strings.Contains(string(out), tc.want) || !strings.Contains(string(out), "fix the preseed") {
				t.Fatalf("console: want %q and the fix, got:\n%s", tc.want, out)
			}
			saved, err := os.ReadFile(filepath.Join(state, "firstboot.error"))
			if err != nil || !strings.Contains(string(saved), tc.want) {
				t.Fatalf("firstboot.error: %v %q", err, saved)
			}
		})
	}
}
