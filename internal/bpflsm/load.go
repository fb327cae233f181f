package bpflsm

import (
	"errors"
	"fmt"
	"reflect"
	"sort"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
)

// optionalHooks are LSM hooks a kernel this backend runs on may lack. A
// program whose hook the running kernel does not have is left out of the
// load (every other program attaching to a missing hook fails the load, as
// before): file_truncate, inode_set_acl and inode_remove_acl exist from
// Linux 6.2 (before it path_truncate sees ftruncate and O_TRUNC, and
// inode_setxattr sees ACLs), the path_* hooks only with
// CONFIG_SECURITY_PATH (Debian has it). What a left-out program would have
// decided stays with the Landlock floor (Guard.Coverage).
var optionalHooks = map[string]bool{
	"file_truncate": true, "inode_set_acl": true, "inode_remove_acl": true,
	"path_unlink": true, "path_rmdir": true, "path_mkdir": true, "path_mknod": true, "path_symlink": true,
	"path_link": true, "path_rename": true, "path_truncate": true, "path_chmod": true, "path_chown": true,
}

// loadObjects loads spec into objs, leaving out the programs of optional
// hooks the running kernel has no BTF for; it returns those hooks.
func loadObjects(spec *ebpf.CollectionSpec, objs *lsmObjects, opts *ebpf.CollectionOptions) (absent map[string]bool, err error) {
	if opts == nil {
		opts = &ebpf.CollectionOptions{}
	}
	absent = map[string]bool{}
	kernel, kerr := btf.LoadKernelSpec()
	for name, p := range spec.Programs {
		if !optionalHooks[p.AttachTo] {
			continue
		}
		if kerr != nil {
			// No kernel BTF: the load itself fails below, with the reason.
			break
		}
		var fn *btf.Func
		if err := kernel.TypeByName("bpf_lsm_"+p.AttachTo, &fn); errors.Is(err, btf.ErrNotFound) {
			absent[p.AttachTo] = true
			delete(spec.Programs, name)
		}
	}
	if len(absent) == 0 {
		return absent, spec.LoadAndAssign(objs, opts)
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, *opts)
	if err != nil {
		return nil, err
	}
	defer coll.Close()
	if err := coll.Assign(&objs.lsmMaps); err != nil {
		return nil, err
	}
	if err := coll.Assign(&objs.lsmVariables); err != nil {
		objs.lsmMaps.Close()
		return nil, err
	}
	// The programs present; the fields of absent ones stay nil.
	v := reflect.ValueOf(&objs.lsmPrograms).Elem()
	for i := 0; i < v.NumField(); i++ {
		name := v.Type().Field(i).Tag.Get("ebpf")
		if p := coll.Programs[name]; p != nil {
			v.Field(i).Set(reflect.ValueOf(p))
			delete(coll.Programs, name)
		}
	}
	return absent, nil
}

// hookProgs names, for each LSM hook Open attaches, its program.
var hookProgs = map[string]string{
	"file_open": "cc_file_open", "file_permission": "cc_file_permission", "file_free_security": "cc_file_free",
	"bprm_check_security": "cc_bprm_check", "ptrace_access_check": "cc_ptrace_access",
	"ptrace_traceme": "cc_ptrace_traceme", "task_kill": "cc_task_kill", "bpf": "cc_bpf",
	"sb_mount": "cc_sb_mount", "move_mount": "cc_move_mount",
	"socket_connect": "cc_socket_connect", "socket_sendmsg": "cc_socket_sendmsg",
	"mmap_file": "cc_mmap_file", "file_mprotect": "cc_file_mprotect", "userns_create": "cc_userns_create",
	"path_unlink": "cc_path_unlink", "path_rmdir": "cc_path_rmdir", "path_mkdir": "cc_path_mkdir",
	"path_mknod": "cc_path_mknod", "path_symlink": "cc_path_symlink", "path_link": "cc_path_link",
	"path_rename": "cc_path_rename", "path_truncate": "cc_path_truncate", "file_truncate": "cc_file_truncate",
	"path_chmod": "cc_path_chmod", "path_chown": "cc_path_chown",
	"inode_setxattr": "cc_inode_setxattr", "inode_removexattr": "cc_inode_removexattr",
	"inode_set_acl": "cc_inode_set_acl", "inode_remove_acl": "cc_inode_remove_acl",
}

// hooks lists the loaded programs of objs by the hook each attaches to;
// a program left out by loadObjects is not listed.
func hooks(o *lsmObjects) map[string]*ebpf.Program {
	byName := map[string]*ebpf.Program{}
	v := reflect.ValueOf(&o.lsmPrograms).Elem()
	for i := 0; i < v.NumField(); i++ {
		if p, _ := v.Field(i).Interface().(*ebpf.Program); p != nil {
			byName[v.Type().Field(i).Tag.Get("ebpf")] = p
		}
	}
	out := map[string]*ebpf.Program{}
	for h, name := range hookProgs {
		if p := byName[name]; p != nil {
			out[h] = p
		}
	}
	return out
}

// Coverage is what the attached programs decide beyond opens, reads,
// writes and execs, so that the Landlock floor can leave it to them (a
// deny then has a row and ECAPABILITY instead of Landlock's EACCES).
type Coverage struct {
	// MakeRemove: creating (mknod, O_CREAT, mkdir, symlink), removing,
	// renaming and linking names (path_mknod, path_mkdir, path_symlink,
	// path_unlink, path_rmdir, path_rename, path_link).
	MakeRemove bool
	// Truncate: truncate(2) (path_truncate) and ftruncate and O_TRUNC
	// (file_truncate from Linux 6.2, path_truncate before it).
	Truncate bool
	// Attrs: mode, owner and extended attributes (path_chmod,
	// path_chown, inode_setxattr, inode_removexattr; ACLs through
	// inode_set_acl and inode_remove_acl from Linux 6.2). Landlock has no
	// right for them: without this there is no per-bundle check at all.
	Attrs bool
	// Absent lists the optional hooks this kernel does not have.
	Absent []string
}

func coverage(attached map[string]bool, absent map[string]bool) Coverage {
	all := func(hs ...string) bool {
		for _, h := range hs {
			if !attached[h] {
				return false
			}
		}
		return true
	}
	// A hook the kernel lacks needs no program where its calls go
	// through another hook (6.1: ftruncate and O_TRUNC through
	// path_truncate, ACLs through inode_setxattr).
	since62 := func(h string) bool { return attached[h] || absent[h] && absent["file_truncate"] }
	c := Coverage{
		MakeRemove: all("path_mknod", "path_mkdir", "path_symlink", "path_unlink", "path_rmdir", "path_rename", "path_link"),
		Truncate:   all("path_truncate") && since62("file_truncate"),
		Attrs: all("path_chmod", "path_chown", "inode_setxattr", "inode_removexattr") &&
			since62("inode_set_acl") && since62("inode_remove_acl"),
	}
	for h := range absent {
		c.Absent = append(c.Absent, h)
	}
	sort.Strings(c.Absent)
	return c
}

func (c Coverage) String() string {
	return fmt.Sprintf("make/remove %v, truncate %v, attributes %v, hooks absent %v", c.MakeRemove, c.Truncate, c.Attrs, c.Absent)
}
