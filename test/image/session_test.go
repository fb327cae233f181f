//go:build image

package image

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// The session test unit's checks (image/rootfs/usr/libexec/coconut-image/session-test).
var sessionChecks = []string{"autologin", "sway", "waybar", "mako", "session-coconut", "bar", "notification", "screenshot"}

// TestImageWorkstationSession boots the raw disk (BIOS) with the
// Workstation preseed and coconut.test=session, without a display device:
// the first boot logs the user in on tty1, whose login starts sway on the
// headless backend with waybar's Coconut module, mako and coconut notify.
// The guest spawns the dream team, waits for the bar to count active
// agents and for the nosy reviewer's deny notification, and grim writes a
// screenshot onto the FAT boot partition, read back here with mtools.
// COCONUT_SESSION_SHOT=PATH keeps the PNG (the README's screenshot).
func TestImageWorkstationSession(t *testing.T) {
	needTools(t, "qemu-system-x86_64", "swtpm", "mcopy", "sfdisk")
	dir := t.TempDir()
	disk := filepath.Join(dir, "coconut.raw")
	run(t, "cp", "--sparse=always", filepath.Join(imageDir(), "coconut.raw"), disk)
	preseed(t, disk, "quiet panic=-1 coconut.test=session coconut.profile=workstation coconut.user="+testUser)
	sock := startTPM(t, dir)
	args := []string{"-accel", accelerator(), "-m", "2048", "-smp", "2", "-vga", "none",
		"-drive", "file=" + disk + ",format=raw,if=virtio"}
	args = append(append(args, tpmArgs(sock)...), guestNIC()...)
	g := runGuest(t, bootTimeout(accelerator()), nil, args...)
	_, data := requireResults(t, g.Log, sessionChecks...)
	t.Logf("bar as %s: %s", testUser, data["bar"])

	shot := filepath.Join(dir, "coconut-session.png")
	run(t, "mcopy", "-n", "-i", fatImage(disk, partitionStart(t, disk, 1)), "::/coconut-session.png", shot)
	png, err := os.ReadFile(shot)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) || len(png) < 10_000 {
		t.Fatalf("the screenshot is not a PNG of a session (%d bytes)", len(png))
	}
	if keep := os.Getenv("COCONUT_SESSION_SHOT"); keep != "" {
		if err := os.WriteFile(keep, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	up := func(k string) float64 { f, _ := strconv.ParseFloat(data[k], 64); return f }
	t.Logf("figures (%s): power on -> autologin %.1f s, -> sway %.1f s, -> waybar/mako/notify %.1f s, -> notification %.1f s (guest uptime); whole qemu run %s; screenshot %d bytes",
		accelerator(), up("uptime-login"), up("uptime-sway"), up("uptime-session"), up("uptime-notification"), g.Wall.Round(1e8), len(png))
}

// TestImageServerNoSession boots the raw disk with the Server preseed: the
// first boot sets up no autologin and no graphical session.
func TestImageServerNoSession(t *testing.T) {
	needTools(t, "qemu-system-x86_64", "swtpm", "mcopy", "sfdisk")
	dir := t.TempDir()
	disk := filepath.Join(dir, "coconut.raw")
	run(t, "cp", "--sparse=always", filepath.Join(imageDir(), "coconut.raw"), disk)
	preseed(t, disk, "quiet panic=-1 coconut.test=session coconut.profile=server coconut.user="+testUser)
	sock := startTPM(t, dir)
	args := []string{"-accel", accelerator(), "-m", "2048", "-smp", "2", "-vga", "none",
		"-drive", "file=" + disk + ",format=raw,if=virtio"}
	args = append(append(args, tpmArgs(sock)...), guestNIC()...)
	g := runGuest(t, bootTimeout(accelerator()), nil, args...)
	_, data := requireResults(t, g.Log, "no-session")
	if data["profile"] != "server" {
		t.Errorf("coconut.toml's profile %q, want server", data["profile"])
	}
	t.Logf("whole qemu run %s", g.Wall.Round(1e8))
}
