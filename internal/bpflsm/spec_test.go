package bpflsm

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/coconut-os/coconut/internal/testutil"
)

// TestSpecHasEveryHook: the committed object holds a program for every
// hook Open attaches, each an LSM program, and the maps it pins.
func TestSpecHasEveryHook(t *testing.T) {
	spec, err := Spec()
	if err != nil {
		t.Fatal(err)
	}
	hooks := map[string]string{"cc_file_open": "lsm/file_open", "cc_file_permission": "lsm/file_permission",
		"cc_file_free": "lsm/file_free_security", "cc_bprm_check": "lsm/bprm_check_security",
		"cc_ptrace_access": "lsm/ptrace_access_check", "cc_ptrace_traceme": "lsm/ptrace_traceme",
		"cc_task_kill": "lsm/task_kill", "cc_bpf": "lsm/bpf", "cc_sb_mount": "lsm/sb_mount", "cc_move_mount": "lsm/move_mount",
		"cc_socket_connect": "lsm/socket_connect", "cc_socket_sendmsg": "lsm/socket_sendmsg",
		"cc_mmap_file": "lsm/mmap_file", "cc_file_mprotect": "lsm/file_mprotect",
		"cc_userns_create": "lsm/userns_create", "cc_path_unlink": "lsm/path_unlink", "cc_path_rmdir": "lsm/path_rmdir", "cc_path_mkdir": "lsm/path_mkdir",
		"cc_path_mknod": "lsm/path_mknod", "cc_path_symlink": "lsm/path_symlink", "cc_path_link": "lsm/path_link",
		"cc_path_rename": "lsm/path_rename", "cc_path_truncate": "lsm/path_truncate", "cc_file_truncate": "lsm/file_truncate",
		"cc_path_chmod": "lsm/path_chmod", "cc_path_chown": "lsm/path_chown",
		"cc_inode_setxattr": "lsm/inode_setxattr", "cc_inode_removexattr": "lsm/inode_removexattr",
		"cc_inode_set_acl": "lsm/inode_set_acl", "cc_inode_remove_acl": "lsm/inode_remove_acl"}
	// Every program is one Open attaches, at the hook its section names.
	if len(hookProgs) != len(hooks) {
		t.Errorf("Open attaches %d hooks, the object has %d programs", len(hookProgs), len(hooks))
	}
	for hook, p := range hookProgs {
		if hooks[p] != "lsm/"+hook {
			t.Errorf("Open attaches %s at lsm/%s, its section is %q", p, hook, hooks[p])
		}
	}
	if len(spec.Programs) != len(hooks) {
		t.Errorf("%d programs, want %d", len(spec.Programs), len(hooks))
	}
	for name, sec := range hooks {
		p := spec.Programs[name]
		if p == nil {
			t.Errorf("program %s missing", name)
			continue
		}
		if p.Type != ebpf.LSM || p.SectionName != sec {
			t.Errorf("%s: type %v section %s, want LSM %s", name, p.Type, p.SectionName, sec)
		}
	}
	for name, typ := range map[string]ebpf.MapType{"agents": ebpf.Hash, "rules": ebpf.LPMTrie, "files": ebpf.Hash, "walkbuf": ebpf.PerCPUArray,
		"events": ebpf.RingBuf, "counters": ebpf.Array, "scratch": ebpf.PerCPUArray, "unix_rules": ebpf.Hash} {
		m := spec.Maps[name]
		if m == nil || m.Type != typ {
			t.Errorf("map %s: %v, want %v", name, m, typ)
		}
	}
	if k := spec.Maps["rules"].KeySize; k != 260 {
		t.Errorf("rule key %d bytes, the kernel's LPM maximum is 260", k)
	}
}

// TestProbeRefusedHere: on a kernel that refuses BPF LSM trampolines (this
// project's hosts) the selection probe says so, with the reason; where BPF
// LSM works (the VM) it passes.
func TestProbeRefusedHere(t *testing.T) {
	testutil.RequireRoot(t, "to load BPF LSM programs")
	root, _ := mkCgroup(t, "probe")
	err := Probe(root)
	if os.Getenv(guestEnv) != "" {
		if err != nil {
			t.Fatal(err)
		}
		return
	}
	if err == nil {
		t.Log("BPF LSM works on this kernel: the probe passed")
		return
	}
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("probe error does not wrap ErrRefused: %v", err)
	}
	if strings.Contains(err.Error(), "MEMLOCK") {
		t.Errorf("the probe repeats cilium/ebpf's wrong MEMLOCK hint: %v", err)
	}
	t.Logf("probe: %v", err)
	if err := Active(); err == nil || errors.Is(err, ErrNoLSMList) {
		// bpf listed (or the list unreadable): the refusal must come from
		// the kernel itself, the EPERM on load (kernel-notes.md).
		if !strings.Contains(Probe(root).Error(), "operation not permitted") {
			t.Errorf("the refusal does not name the EPERM on load: %v", err)
		}
	}
}
