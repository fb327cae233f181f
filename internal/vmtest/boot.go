package vmtest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Cache is where scripts/vmtest-kernels.sh keeps the kernels.
func Cache() string {
	if d := os.Getenv("COCONUT_VMTEST_CACHE"); d != "" {
		return d
	}
	return "/var/cache/coconut-vmtest"
}

// Kernels are the guests every run boots: Debian bookworm's 6.1 and
// trixie's 6.12.
var Kernels = []string{"bookworm", "trixie"}

// LSMs is the guest's lsm= list: bpf must be in it or BPF LSM programs
// attach and never run.
const LSMs = "landlock,lockdown,yama,bpf"

// rcMarker ends the guest's output with the workload's exit status.
const rcMarker = "COCONUT-VMTEST-RC="

// Workload is one test binary the guest runs, in order.
type Workload struct {
	Name string // marker name, e.g. "bpflsm"
	Path string // host path of the static binary
	Args []string
}

// Initramfs builds an initramfs whose init mounts the pseudo file systems
// the tests need, runs each workload with env set, prints
// COCONUT-VMTEST-RC=<name>:<status> after each, and powers off.
func Initramfs(busybox string, workloads []Workload, env []string) ([]byte, error) {
	return InitramfsFiles(busybox, workloads, env, nil)
}

// InitramfsFiles is Initramfs with more files in the image (guest path
// without the leading slash → entry; parent directories are added).
func InitramfsFiles(busybox string, workloads []Workload, env []string, extra map[string]Entry) ([]byte, error) {
	bb, err := File(busybox, 0o755)
	if err != nil {
		return nil, err
	}
	entries := map[string]Entry{
		"bin": {Mode: 0o755, Dir: true}, "proc": {Mode: 0o555, Dir: true}, "sys": {Mode: 0o555, Dir: true},
		"dev": {Mode: 0o755, Dir: true}, "tmp": {Mode: 0o1777, Dir: true}, "etc": {Mode: 0o755, Dir: true},
		"bin/busybox": bb,
	}
	init := `#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
mount -t securityfs securityfs /sys/kernel/security
mount -t bpf bpf /sys/fs/bpf
mount -t cgroup2 cgroup2 /sys/fs/cgroup
ip link set lo up 2>/dev/null
echo "COCONUT-VMTEST-KERNEL $(uname -r) lsm=$(cat /sys/kernel/security/lsm)"
cd /tmp
`
	for _, w := range workloads {
		e, err := File(w.Path, 0o755)
		if err != nil {
			return nil, err
		}
		entries["w/"+w.Name] = e
		init += "env " + strings.Join(quote(env), " ") + " /w/" + w.Name + " " + strings.Join(quote(w.Args), " ") + "\n"
		init += `echo "` + rcMarker + w.Name + `:$?"` + "\n"
	}
	init += "poweroff -f\n"
	entries["w"] = Entry{Mode: 0o755, Dir: true}
	for p, e := range extra {
		p = strings.TrimPrefix(p, "/")
		entries[p] = e
		for d := filepath.Dir(p); d != "." && d != "/"; d = filepath.Dir(d) {
			if _, ok := entries[d]; !ok {
				entries[d] = Entry{Mode: 0o755, Dir: true}
			}
		}
	}
	entries["init"] = Entry{Mode: 0o755, Data: []byte(init)}
	for _, l := range []string{"sh", "mount", "mkdir", "cat", "echo", "true", "false", "poweroff", "env", "uname", "sleep", "ls", "ip"} {
		entries["bin/"+l] = Entry{Link: "busybox"}
	}
	var buf bytes.Buffer
	if err := WriteCPIO(&buf, entries); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func quote(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
	}
	return out
}

// Result is one boot.
type Result struct {
	RC     map[string]int // each workload's exit status, by name; missing if its marker never came
	Output string
	Took   time.Duration
}

// Boot runs kernel with initrd under qemu and streams every console line
// to line (nil: none) until the guest powers off or ctx ends. KVM is used
// when /dev/kvm opens; a KVM that cannot run the guest (nested
// virtualisation missing MSRs: qemu aborts before the kernel prints) falls
// back to TCG.
func Boot(ctx context.Context, kernel, initrd string, line func(string)) (Result, error) {
	if f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0); err == nil {
		f.Close()
		res, err := boot(ctx, kernel, initrd, line, true)
		if err == nil || res.Output != "" || ctx.Err() != nil {
			return res, err
		}
		if line != nil {
			line("COCONUT-VMTEST KVM failed (" + err.Error() + "): falling back to TCG")
		}
	}
	return boot(ctx, kernel, initrd, line, false)
}

func boot(ctx context.Context, kernel, initrd string, line func(string), kvm bool) (Result, error) {
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		return Result{}, fmt.Errorf("qemu-system-x86_64: %w (apt-get install qemu-system-x86)", err)
	}
	args := []string{"-nographic", "-no-reboot", "-nic", "none", "-m", "1024", "-smp", "1",
		"-kernel", kernel, "-initrd", initrd,
		"-append", "console=ttyS0 quiet loglevel=3 panic=-1 lsm=" + LSMs}
	if kvm {
		args = append(args, "-enable-kvm", "-cpu", "host")
	} else {
		args = append(args, "-accel", "tcg", "-cpu", "max")
	}
	cmd := exec.CommandContext(ctx, qemu, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return Result{}, err
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Stdin = nil
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return Result{}, err
	}
	res := Result{RC: map[string]int{}}
	var all strings.Builder
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := strings.TrimRight(sc.Text(), "\r")
		all.WriteString(l + "\n")
		if line != nil {
			line(l)
		}
		if i := strings.Index(l, rcMarker); i >= 0 {
			name, st, _ := strings.Cut(strings.TrimSpace(l[i+len(rcMarker):]), ":")
			if rc, err := strconv.Atoi(st); err == nil {
				res.RC[name] = rc
			}
		}
	}
	io.Copy(io.Discard, out)
	werr := cmd.Wait()
	res.Took, res.Output = time.Since(t0), all.String()
	if ctx.Err() != nil {
		return res, fmt.Errorf("guest did not power off in time: %w", ctx.Err())
	}
	if werr != nil && len(res.RC) == 0 {
		return res, fmt.Errorf("qemu: %v: %s", werr, firstLine(stderr.String()))
	}
	return res, nil
}

// Kernel returns the cached vmlinuz of a guest name, fetching the kernels
// first when the cache lacks it (scripts/vmtest-kernels.sh).
func Kernel(repoRoot, name string) (string, error) {
	// One fetch at a time: the guests boot in parallel, and the script
	// fetches every kernel into one cache.
	kernelMu.Lock()
	defer kernelMu.Unlock()
	p := filepath.Join(Cache(), name, "vmlinuz")
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	cmd := exec.Command("bash", filepath.Join(repoRoot, "scripts", "vmtest-kernels.sh"))
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("fetch kernels: %v: %s", err, out)
	}
	if _, err := os.Stat(p); err != nil {
		return "", errors.New("scripts/vmtest-kernels.sh left no " + p)
	}
	return p, nil
}

var kernelMu sync.Mutex

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
