//go:build image

package image

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// Shared by the ISO and UEFI boot tests (uefi_test.go): the software TPM,
// the FAT boot partition edited with mtools at its offset, OVMF's flash,
// and a qemu run whose serial console is a pipe the test reads (and
// answers questions on) while the guest runs.

// startTPM starts swtpm for one guest and returns its control socket.
func startTPM(t *testing.T, dir string) string {
	t.Helper()
	tpmDir := filepath.Join(dir, "tpm")
	if err := os.Mkdir(tpmDir, 0o700); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(tpmDir, "swtpm.sock")
	swtpm := exec.Command("swtpm", "socket", "--tpm2", "--tpmstate", "dir="+tpmDir,
		"--ctrl", "type=unixio,path="+sock, "--log", "file="+filepath.Join(tpmDir, "swtpm.log"))
	if err := swtpm.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { swtpm.Process.Kill(); swtpm.Wait() })
	for i := 0; i < 100; i++ {
		if _, err := os.Stat(sock); err == nil {
			return sock
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("swtpm made no socket %s", sock)
	return ""
}

func tpmArgs(sock string) []string {
	return []string{"-chardev", "socket,id=chrtpm,path=" + sock,
		"-tpmdev", "emulator,id=tpm0,chardev=chrtpm", "-device", "tpm-tis,tpmdev=tpm0"}
}

// partitionStart is the byte offset of partition n (1-based) of a disk
// image's partition table, as sfdisk reads it.
func partitionStart(t *testing.T, disk string, n int) int64 {
	t.Helper()
	out, err := exec.Command("sfdisk", "-J", disk).Output()
	if err != nil {
		t.Fatalf("sfdisk -J %s: %v", disk, err)
	}
	var pt struct {
		PartitionTable struct {
			SectorSize int64 `json:"sectorsize"`
			Partitions []struct {
				Node  string `json:"node"`
				Start int64  `json:"start"`
			} `json:"partitions"`
		} `json:"partitiontable"`
	}
	if err := json.Unmarshal(out, &pt); err != nil {
		t.Fatalf("sfdisk -J: %v", err)
	}
	ss := pt.PartitionTable.SectorSize
	if ss == 0 {
		ss = 512
	}
	for _, p := range pt.PartitionTable.Partitions {
		if strings.HasSuffix(p.Node, fmt.Sprint(n)) {
			return p.Start * ss
		}
	}
	t.Fatalf("%s has no partition %d: %s", disk, n, out)
	return 0
}

// fatImage names the FAT file system at byte offset off of disk for mtools.
func fatImage(disk string, off int64) string { return fmt.Sprintf("%s@@%d", disk, off) }

// fatWrite puts a file on the FAT partition (mtools: no loop device).
func fatWrite(t *testing.T, img, name string, content []byte) {
	t.Helper()
	tmp := filepath.Join(t.TempDir(), filepath.Base(name))
	if err := os.WriteFile(tmp, content, 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, "mcopy", "-o", "-i", img, tmp, "::"+name)
}

// fatAppendOptions adds words to the kernel command line in systemd-boot's
// entry (the options line) on the FAT partition.
func fatAppendOptions(t *testing.T, img, words string) {
	t.Helper()
	tmp := filepath.Join(t.TempDir(), "coconut.conf")
	run(t, "mcopy", "-n", "-i", img, "::/loader/entries/coconut.conf", tmp)
	b, err := os.ReadFile(tmp)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	found := false
	for i, l := range lines {
		if strings.HasPrefix(l, "options ") {
			lines[i] += " " + words
			found = true
		}
	}
	if !found {
		t.Fatalf("no options line in loader/entries/coconut.conf:\n%s", b)
	}
	fatWrite(t, img, "/loader/entries/coconut.conf", []byte(strings.Join(lines, "\n")))
}

// ovmfArgs gives qemu Debian's OVMF (the ovmf package): the firmware's code
// read-only, a private copy of its variable store.
func ovmfArgs(t *testing.T, dir string) []string {
	t.Helper()
	code, vars := "/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"
	for _, f := range []string{code, vars} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("%v (apt-get install ovmf; bash .ci/run installs it)", err)
		}
	}
	b, err := os.ReadFile(vars)
	if err != nil {
		t.Fatal(err)
	}
	myVars := filepath.Join(dir, "OVMF_VARS.fd")
	if err := os.WriteFile(myVars, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return []string{"-drive", "if=pflash,format=raw,unit=0,readonly=on,file=" + code,
		"-drive", "if=pflash,format=raw,unit=1,file=" + myVars}
}

// guestNIC is a user-mode network for systemd-networkd's DHCP, restricted:
// the guest reaches nothing outside qemu.
func guestNIC() []string {
	return []string{"-nic", "user,model=virtio-net-pci,restrict=on"}
}

// A prompt on the console: "label [default]: " with nothing after it.
var promptRE = regexp.MustCompile(`([A-Za-z][A-Za-z -]*) \[[^\]\n]*\]: $`)

// guestRun is one qemu run with its serial console on a pipe.
type guestRun struct {
	Log      []byte            // the serial console
	Wall     time.Duration     // the qemu run
	Answered map[string]string // prompts answered: label -> answer
	Panic    bool              // the guest kernel panicked
	Reasked  string            // a prompt asked again: its answer was refused
}

// runGuest runs qemu with args (-serial stdio is added) until it exits or
// the timeout. Every console prompt whose label is in answers is answered
// once (a label asked again, after a refused answer, is a failure: the
// test's answer was wrong). A kernel panic ends the run at once: the guest
// is killed rather than left spinning under TCG (and the kernel command
// line says panic=-1 under qemu's -no-reboot, as TestImageBoot's does), and
// the oops is reported as kernelOops cuts it.
func runGuest(t *testing.T, timeout time.Duration, answers map[string]string, args ...string) guestRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	args = append([]string{"-display", "none", "-monitor", "none", "-serial", "stdio", "-no-reboot"}, args...)
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64", args...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := guestRun{Answered: map[string]string{}}
	// COCONUT_IMAGE_SERIAL=PREFIX keeps the console in PREFIX.TESTNAME,
	// written as it comes (tail -f it to watch a slow boot).
	var keep io.Writer = io.Discard
	if prefix := os.Getenv("COCONUT_IMAGE_SERIAL"); prefix != "" {
		if f, err := os.Create(prefix + "." + strings.ReplaceAll(t.Name(), "/", "_")); err == nil {
			defer f.Close()
			keep = f
		}
	}
	var mu sync.Mutex
	var buf bytes.Buffer
	done := make(chan struct{})
	go func() {
		defer close(done)
		chunk := make([]byte, 4096)
		lastPrompt := -1
		for {
			n, err := stdout.Read(chunk)
			if n > 0 {
				mu.Lock()
				buf.Write(chunk[:n])
				keep.Write(chunk[:n])
				b := buf.Bytes()
				if !r.Panic && bytes.Contains(b[max(0, len(b)-n-64):], []byte("Kernel panic - not syncing")) {
					r.Panic = true
					cancel()
				}
				if loc := promptRE.FindSubmatchIndex(b[max(0, len(b)-256):]); loc != nil {
					at := max(0, len(b)-256) + loc[0]
					label := strings.TrimSpace(string(b[at+loc[2]-loc[0] : at+loc[3]-loc[0]]))
					if at > lastPrompt {
						lastPrompt = at
						if ans, ok := answers[label]; ok {
							if _, again := r.Answered[label]; again {
								r.Reasked = label
								cancel()
							} else {
								r.Answered[label] = ans
								io.WriteString(stdin, ans+"\r")
							}
						}
					}
				}
				mu.Unlock()
			}
			if err != nil {
				return
			}
		}
	}()
	<-done
	werr := cmd.Wait()
	r.Wall = time.Since(start)
	r.Log = buf.Bytes()
	switch {
	case r.Panic:
		if oops := kernelOops(r.Log); oops != "" {
			t.Fatalf("the guest kernel died (after %s):\n%s", r.Wall.Round(time.Second), oops)
		}
		t.Fatalf("the guest kernel panicked after %s; serial console:\n%s", r.Wall.Round(time.Second), tail(r.Log, 60))
	case r.Reasked != "":
		t.Fatalf("the console asked %q again (answer %q refused); serial console:\n%s", r.Reasked, r.Answered[r.Reasked], tail(r.Log, 40))
	case ctx.Err() != nil:
		t.Fatalf("qemu ran past %s; serial console:\n%s", timeout, tail(r.Log, 60))
	case werr != nil:
		t.Fatalf("qemu: %v after %s; serial console:\n%s", werr, r.Wall.Round(time.Second), tail(r.Log, 60))
	}
	return r
}

// requireResults turns the image test unit's lines into subtests: each
// name must have PASS.
func requireResults(t *testing.T, log []byte, names ...string) (map[string]result, map[string]string) {
	t.Helper()
	results, data := parse(log)
	if _, ok := results["END"]; !ok {
		t.Fatalf("the image's test unit did not finish; serial console:\n%s", tail(log, 80))
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			r, ok := results[name]
			switch {
			case !ok:
				t.Fatalf("no %s result on the serial console", name)
			case r.status != "PASS":
				t.Fatalf("%s: %s", r.status, r.detail)
			}
			t.Log(r.detail)
		})
	}
	return results, data
}

// needTools fails (does not skip: .ci/run installs them) when a tool is missing.
func needTools(t *testing.T, tools ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the image test runs as root (make test-image)")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s: %v (bash .ci/run installs it)", tool, err)
		}
	}
}
