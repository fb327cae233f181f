package bpflsm

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// LSMFile is the active LSM list.
const LSMFile = "/sys/kernel/security/lsm"

// EnableHint says how to turn BPF LSM on.
const EnableHint = "boot with bpf in the kernel's lsm= list (for example lsm=landlock,lockdown,yama,bpf on the kernel command line; the kernel needs CONFIG_BPF_LSM=y)"

// ErrNoLSMList: the active LSM list cannot be read (securityfs unmounted).
var ErrNoLSMList = errors.New("active LSM list unreadable")

// Active reports whether bpf is in the active LSM list, and why not.
func Active() error {
	b, err := os.ReadFile(LSMFile)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%w: %w: %s is missing: securityfs is not mounted (mount -t securityfs securityfs /sys/kernel/security) or the kernel has no LSM list", ErrRefused, ErrNoLSMList, LSMFile)
		}
		return fmt.Errorf("%w: %v", ErrRefused, err)
	}
	list := strings.TrimSpace(string(b))
	for _, l := range strings.Split(list, ",") {
		if l == "bpf" {
			return nil
		}
	}
	return fmt.Errorf("%w: bpf is not in the active LSM list (%s): programs would attach and never run; %s", ErrRefused, list, EnableHint)
}

// Probe is the selection self-test: bpf must be an active LSM, the whole
// object must load (every program through the verifier), and file_open,
// attached, must fire on an exec made inside a probe cgroup created under
// cgroupRoot. A nil error means the bpf-lsm backend really works here.
// An unreadable LSM list (securityfs not mounted) does not decide: the
// programs must then prove themselves by firing, and a refusal names both.
func Probe(cgroupRoot string) error {
	note := ""
	if err := Active(); err != nil {
		if !errors.Is(err, ErrNoLSMList) {
			return err
		}
		note = " (" + LSMFile + " is missing: securityfs is not mounted, so the active LSM list could not be read)"
	}
	spec, err := loadLsm()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp(cgroupRoot, "bpflsm-probe-")
	if err != nil {
		return fmt.Errorf("bpf-lsm probe cgroup: %w", err)
	}
	defer os.Remove(dir)
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return err
	}
	if err := spec.Variables["probe_cgroup"].Set(st.Ino); err != nil {
		return fmt.Errorf("bpf-lsm probe: %w", err)
	}
	var objs lsmObjects
	if _, err := loadObjects(spec, &objs, nil); err != nil {
		return fmt.Errorf("%w: the kernel refuses BPF LSM programs (%v): %s%s", ErrRefused, trimHint(err), refusedHint(err), note)
	}
	defer objs.Close()
	l, err := link.AttachLSM(link.LSMOptions{Program: objs.CcFileOpen})
	if err != nil {
		return fmt.Errorf("%w: attach lsm/file_open: %v", ErrRefused, err)
	}
	defer l.Close()
	if err := runIn(dir); err != nil {
		return fmt.Errorf("bpf-lsm probe: run a process in %s: %w", dir, err)
	}
	var hits uint64
	if err := objs.ProbeHits.Get(&hits); err != nil {
		return fmt.Errorf("bpf-lsm probe: %w", err)
	}
	if hits == 0 {
		return fmt.Errorf("%w: lsm/file_open attached but did not run on an exec in the probe cgroup; %s%s", ErrRefused, EnableHint, note)
	}
	return nil
}

// runIn execs a trivial program inside cgroup dir (the exec opens files).
func runIn(dir string) error {
	fd, err := unix.Open(dir, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	bin := "/bin/true"
	if _, err := os.Stat(bin); err != nil {
		bin = "/usr/bin/true"
	}
	cmd := exec.Command(bin)
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
	return cmd.Run()
}

func trimHint(err error) string {
	s := err.Error()
	// cilium/ebpf's MEMLOCK hint on EPERM is wrong for trampolines (kernel-notes.md).
	if i := strings.Index(s, " (MEMLOCK may be too low"); i >= 0 {
		s = s[:i]
	}
	return s
}

func refusedHint(err error) string {
	if errors.Is(err, unix.EPERM) {
		return "the kernel refuses trampoline programs (lsm/, fentry/: BPF_PROG_LOAD EPERM, e.g. a lockdown or hypervisor policy) even where bpf is in its LSM list; use a kernel that allows them, booted with bpf in lsm="
	}
	if errors.Is(err, ebpf.ErrNotSupported) {
		return "this kernel has no BPF LSM program type; " + EnableHint
	}
	return EnableHint
}
