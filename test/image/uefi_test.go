//go:build image

package image

import (
	"encoding/json"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// The checks of the image's test unit every boot must pass; "network" is
// systemd-networkd's DHCP lease on the guest's user-mode NIC.
var isoChecks = []string{"lsm", "firstboot", "coconutd", "tpm", "doctor-runs", "user", "spawn", "deny", "verify", "network"}

// TestImageISOUEFI boots the hybrid ISO as a disk (a USB stick) under UEFI:
// Debian's OVMF finds systemd-boot on the ISO's appended FAT partition (the
// EFI system partition), the kernel mounts the appended ext4 root. The
// preseed goes on systemd-boot's options line, as a user would edit it.
func TestImageISOUEFI(t *testing.T) {
	needTools(t, "qemu-system-x86_64", "swtpm", "mcopy", "sfdisk")
	dir := t.TempDir()
	disk := filepath.Join(dir, "coconut.iso")
	run(t, "cp", "--sparse=always", filepath.Join(imageDir(), "coconut.iso"), disk)
	esp := fatImage(disk, partitionStart(t, disk, 2))
	fatAppendOptions(t, esp, "quiet panic=-1 coconut.test=1 coconut.profile=workstation coconut.user="+testUser)
	sock := startTPM(t, dir)
	args := append([]string{"-accel", accelerator(), "-m", "2048", "-smp", "2",
		"-drive", "file=" + disk + ",format=raw,if=virtio"}, ovmfArgs(t, dir)...)
	args = append(append(args, tpmArgs(sock)...), guestNIC()...)
	g := runGuest(t, bootTimeout(accelerator()), nil, args...)
	_, data := requireResults(t, g.Log, isoChecks...)
	if data["firmware"] != "uefi" {
		t.Errorf("the guest booted %q, want uefi (/sys/firmware/efi)", data["firmware"])
	}
	checkDenyRow(t, data["deny"])
	logFigures(t, "ISO, UEFI (OVMF)", data, g.Wall)
}

// TestImageISOBIOSQuestions boots the hybrid ISO as a disk under BIOS
// (SeaBIOS: isohdpfx.bin, then isolinux from the ISO 9660 tree) with no
// preseed: the first boot asks its questions on the serial console and the
// test answers them there, as a user at the console would. The ISO's
// isolinux.cfg is read-only, so the test unit is turned on by a
// coconut-test file on the FAT partition.
func TestImageISOBIOSQuestions(t *testing.T) {
	needTools(t, "qemu-system-x86_64", "swtpm", "mcopy", "sfdisk")
	dir := t.TempDir()
	disk := filepath.Join(dir, "coconut.iso")
	run(t, "cp", "--sparse=always", filepath.Join(imageDir(), "coconut.iso"), disk)
	fatWrite(t, fatImage(disk, partitionStart(t, disk, 2)), "/coconut-test", []byte("1\n"))
	sock := startTPM(t, dir)
	args := []string{"-accel", accelerator(), "-m", "2048", "-smp", "2",
		"-drive", "file=" + disk + ",format=raw,if=virtio"}
	args = append(append(args, tpmArgs(sock)...), guestNIC()...)
	const consoleUser = "bob"
	answers := map[string]string{
		"Workstation user to create": consoleUser, // the image's own question
		"profile":                    "workstation",
		"backend":                    "", // Enter: the defaults
		"anchor":                     "",
		"notifications":              "",
	}
	g := runGuest(t, bootTimeout(accelerator()), answers, args...)
	for label := range answers {
		if _, ok := g.Answered[label]; !ok {
			t.Errorf("the console never asked %q", label)
		}
	}
	_, data := requireResults(t, g.Log, isoChecks...)
	if data["firmware"] != "bios" {
		t.Errorf("the guest booted %q, want bios", data["firmware"])
	}
	if data["profile"] != "workstation" {
		t.Errorf("coconut.toml's profile %q, want the answer workstation", data["profile"])
	}
	checkDenyRow(t, data["deny"])
	logFigures(t, "ISO, BIOS, console questions", data, g.Wall)
}

func checkDenyRow(t *testing.T, raw string) {
	t.Helper()
	var row struct {
		Type, Object, Result string
		Errno                int
	}
	if err := json.Unmarshal([]byte(raw), &row); err != nil {
		t.Fatalf("deny row: %v: %q", err, raw)
	}
	if row.Type != "cap.deny" || row.Result != "deny" || row.Errno != 134 {
		t.Errorf("deny row %+v: want cap.deny, deny, errno 134", row)
	}
}

func logFigures(t *testing.T, what string, data map[string]string, wall time.Duration) {
	up := func(k string) float64 { f, _ := strconv.ParseFloat(data[k], 64); return f }
	t.Logf("figures (%s, %s): boot to doctor OK %.1f s (guest uptime), doctor -> deny %.1f s, whole qemu run %s",
		what, accelerator(), up("uptime-doctor"), up("uptime-deny")-up("uptime-doctor"), wall.Round(100*time.Millisecond))
}

// TestImageRawUEFI boots the raw disk under UEFI (OVMF): the same FAT
// partition, found through the DOS label, starts systemd-boot.
func TestImageRawUEFI(t *testing.T) {
	needTools(t, "qemu-system-x86_64", "swtpm", "mcopy", "sfdisk")
	dir := t.TempDir()
	disk := filepath.Join(dir, "coconut.raw")
	run(t, "cp", "--sparse=always", filepath.Join(imageDir(), "coconut.raw"), disk)
	fatAppendOptions(t, fatImage(disk, partitionStart(t, disk, 1)),
		"quiet panic=-1 coconut.test=1 coconut.profile=workstation coconut.user="+testUser)
	sock := startTPM(t, dir)
	args := append([]string{"-accel", accelerator(), "-m", "2048", "-smp", "2",
		"-drive", "file=" + disk + ",format=raw,if=virtio"}, ovmfArgs(t, dir)...)
	args = append(append(args, tpmArgs(sock)...), guestNIC()...)
	g := runGuest(t, bootTimeout(accelerator()), nil, args...)
	_, data := requireResults(t, g.Log, isoChecks...)
	if data["firmware"] != "uefi" {
		t.Errorf("the guest booted %q, want uefi (/sys/firmware/efi)", data["firmware"])
	}
	checkDenyRow(t, data["deny"])
	logFigures(t, "raw disk, UEFI (OVMF)", data, g.Wall)
}
