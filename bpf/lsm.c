//go:build ignore

/* lsm: coconut's bpf-lsm backend, the file, exec and process checks made at
 * the kernel's LSM hooks.
 *
 * Every program first looks the calling task's cgroup up in `agents`; a task
 * that is not an agent returns at once (one helper call and one hash
 * lookup). For an agent:
 *   file_open            the path from bpf_d_path (one outside the mount
 *                        tree, an anon inode or pipe, is not a file
 *                        access and passes), looked up in the agent's
 *                        rules (an LPM trie, longest prefix wins; userspace
 *                        folds the rights of shorter prefixes into longer
 *                        ones), against the open's read/write mode. The
 *                        decision is remembered per open file in `files`.
 *   file_permission      every read and write on a descriptor the agent
 *                        opened: the remembered decision while the agent's
 *                        gen is unchanged, else the remembered path is
 *                        decided again on the current rules, so a revoke
 *                        cuts descriptors opened before it.
 *   file_free_security   forgets the file.
 *   bprm_check_security  exec of the binary (and of a script's interpreter)
 *                        needs an exec right.
 *   measured             the sealed memfds coconutd measured for an agent
 *                        (program, script) have no path: file_open,
 *                        bprm_check_security and mmap_file allow them by
 *                        (dev, ino), only to that agent's cgroup; every
 *                        other pathless file ("/memfd:x (deleted)") is
 *                        decided by its path text and so denied.
 *   ptrace_access_check, ptrace_traceme, task_kill
 *                        only processes in the agent's own cgroup.
 *   mmap_file, file_mprotect
 *                        mapping a file as code (PROT_EXEC) needs exec, or
 *                        the map-exec right of the baseline's libraries:
 *                        dlopen/LD_PRELOAD of a merely readable file fails.
 *   bpf, sb_mount, move_mount, userns_create
 *                        never (a user namespace would give the agent
 *                        capabilities over new namespaces of every kind).
 *   socket_connect, socket_sendmsg
 *                        a Unix socket address must be in the agent's
 *                        unix_rules (the network guard's allowlist: fd
 *                        passing stays closed on kernels without its Unix
 *                        cgroup hooks, Linux before 6.7). inet addresses
 *                        are the network guard's (cgroup BPF).
 * Fail closed: a path that does not fit, a bpf_d_path error or a full
 * `files` map is a deny with its own reason.
 *
 * A deny returns -ECAPABILITY, takes the next deny number (counters[0]) and writes an event
 * to the ring buffer; when the ring is full counters[1] counts the loss,
 * so counters[0] == events delivered + counters[1].
 *
 * Kernel structs are declared below with only the fields read, and
 * preserve_access_index: CO-RE relocates them against the running
 * kernel's BTF (checked on Debian's 6.1 and 6.12).
 */

#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#include "lsm.h"

char __license[] SEC("license") = "GPL"; /* bpf_d_path is GPL-only */

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)
struct kernfs_node {
	__u64 id;
};
struct cgroup {
	struct kernfs_node *kn;
};
struct css_set {
	struct cgroup *dfl_cgrp;
};
struct task_struct {
	int tgid;
	struct css_set *cgroups;
	struct fs_struct *fs;
	struct nsproxy *nsproxy;
};
struct socket;
struct mnt_namespace;
struct list_head {
	struct list_head *next;
	struct list_head *prev;
};
struct super_block {
	unsigned int s_dev;
	struct list_head s_mounts; /* struct mount, by mnt_instance */
};
struct inode {
	unsigned long i_ino;
	struct super_block *i_sb;
};
struct qstr {
	union {
		struct {
			__u32 hash;
			__u32 len;
		};
		__u64 hash_len;
	};
	const unsigned char *name;
};
struct dentry {
	struct dentry *d_parent;
	struct qstr d_name;
	struct super_block *d_sb;
};
struct vfsmount {
	struct dentry *mnt_root;
};
/* fs/mount.h: the vfsmount is embedded; container_of by CO-RE offset. */
struct mount {
	struct mount *mnt_parent;
	struct dentry *mnt_mountpoint;
	struct vfsmount mnt;
	struct list_head mnt_instance;
	struct mnt_namespace *mnt_ns;
};
struct path {
	struct vfsmount *mnt;
	struct dentry *dentry;
};
struct fs_struct {
	struct path root;
};
struct nsproxy {
	struct mnt_namespace *mnt_ns;
};
struct file {
	struct path f_path;
	struct inode *f_inode;
	unsigned int f_mode;
};
struct linux_binprm {
	struct file *file;
};
struct vm_area_struct {
	struct file *vm_file;
};
struct msghdr {
	void *msg_name;
	int msg_namelen;
};
#pragma clang attribute pop

#define FMODE_READ 0x1
#define FMODE_WRITE 0x2
#define MAY_WRITE 0x2
#define MAY_READ 0x4
#define MAY_APPEND 0x8
#define ENAMETOOLONG 36
#define PROT_EXEC 0x4

/* counters[0]: the last deny number handed out, so also the deny count;
 * counters[1]: denies whose event could not be reserved in the ring buffer.
 * A map rather than globals so that it can be pinned by name. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64); /* cgroup id (the cgroup2 directory's inode) */
	__type(value, struct lsm_agent);
} agents SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 262144);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lsm_key);
	__type(value, __u32); /* LSM_R|LSM_W|LSM_X */
} rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64); /* struct file address, forgotten at file_free_security */
	__type(value, struct lsm_file);
} files SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lsm_unix_key);
	__type(value, __u8);
} unix_rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lsm_measured_key);
	__type(value, __u32); /* LSM_R|LSM_X|LSM_M */
} measured SEC(".maps");

/* Room for one lsm_file per CPU: too big for the 512-byte stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lsm_file);
} scratch SEC(".maps");

/* The path hooks' walk buffer (struct lsm_walk), per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lsm_walk);
} walkbuf SEC(".maps");

/* 8 MiB, a power of two: about 27k events of 296 bytes. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20);
} events SEC(".maps");

/* Self-test (enforce's selection probe): file_open counts the opens of
 * tasks in this cgroup. Set by the probe; 0 counts nothing. */
__u64 probe_cgroup = 0;
__u64 probe_hits = 0;

/* Keep struct lsm_event and lsm_unix_key in BTF for bpf2go (-type). */
const struct lsm_event *unused_event __attribute__((unused));
const struct lsm_unix_key *unused_unix_key __attribute__((unused));
const struct lsm_measured_key *unused_measured_key __attribute__((unused));


static __always_inline int deny(__u64 cg, __u16 op, __u16 reason, __u32 want, const char *path, __u32 target)
{
	__u32 k0 = 0, k1 = 1;
	__u64 *dseq = bpf_map_lookup_elem(&counters, &k0);
	__u64 *full = bpf_map_lookup_elem(&counters, &k1);
	if (!dseq || !full)
		return -ECAPABILITY;
	__u64 seq = __sync_fetch_and_add(dseq, 1) + 1;
	struct lsm_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		__sync_fetch_and_add(full, 1);
		return -ECAPABILITY;
	}
	e->seq = seq;
	e->cgroup = cg;
	e->pid = bpf_get_current_pid_tgid() >> 32;
	e->target_pid = target;
	e->op = op;
	e->reason = reason;
	e->want = want;
	if (path)
		__builtin_memcpy(e->path, path, LSM_PATH_MAX);
	else
		e->path[0] = 0;
	bpf_ringbuf_submit(e, 0);
	return -ECAPABILITY;
}

/* allowed: read is implied by write and exec. */
static __always_inline int allowed(__u32 rights, __u32 want)
{
	if ((want & LSM_R) && !(rights & (LSM_R | LSM_W | LSM_X)))
		return 0;
	if ((want & LSM_W) && !(rights & LSM_W))
		return 0;
	if ((want & LSM_X) && !(rights & LSM_X))
		return 0;
	return 1;
}

/* lookup_path fills s->key with p's path under policy and returns the
 * rights, or a negative reason. */
static __always_inline int lookup_path(struct lsm_file *s, struct path *p, __u32 policy)
{
	long n = bpf_d_path(p, s->key.path, LSM_PATH_MAX);
	if (n < 0)
		return n == -ENAMETOOLONG ? -LSM_WHY_PATH_TOO_LONG : -LSM_WHY_D_PATH;
	if (n > LSM_PATH_MAX || n < 1)
		return -LSM_WHY_PATH_TOO_LONG;
	s->key.prefixlen = 32 + n * 8;
	s->key.policy = policy;
	__u32 *r = bpf_map_lookup_elem(&rules, &s->key);
	return r ? *r : 0;
}

/* measured_rights: the rights coconutd gave cgroup cg on this very inode
 * (a sealed memfd it measured for the agent), 0 for any other file. */
static __always_inline __u32 measured_rights(__u64 cg, struct file *file)
{
	struct lsm_measured_key k = {};
	k.cgroup = cg;
	k.ino = BPF_CORE_READ(file, f_inode, i_ino);
	k.dev = BPF_CORE_READ(file, f_inode, i_sb, s_dev);
	__u32 *r = bpf_map_lookup_elem(&measured, &k);
	return r ? *r : 0;
}

static __always_inline struct lsm_file *scratch_file(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&scratch, &zero);
}

SEC("lsm/file_open")
int BPF_PROG(cc_file_open, struct file *file)
{
	__u64 cg = bpf_get_current_cgroup_id();
	if (probe_cgroup && cg == probe_cgroup)
		__sync_fetch_and_add(&probe_hits, 1);
	struct lsm_agent *a = bpf_map_lookup_elem(&agents, &cg);
	if (!a)
		return 0;
	struct lsm_file *s = scratch_file();
	if (!s)
		return deny(cg, LSM_OP_OPEN, LSM_WHY_MAP_FULL, 0, 0, 0);
	__u32 mode = file->f_mode;
	__u32 want = 0;
	if (mode & FMODE_READ)
		want |= LSM_R;
	if (mode & FMODE_WRITE)
		want |= LSM_W;
	/* The measured script, read by its interpreter through
	 * /proc/self/fd: allowed by identity, never by a path. */
	__u32 mr = measured_rights(cg, file);
	if (mr && allowed(mr, want))
		return 0;
	s->key.path[0] = 0;
	int rights = lookup_path(s, &file->f_path, a->policy);
	if (rights < 0)
		return deny(cg, LSM_OP_OPEN, -rights, want, s->key.path, 0);
	/* No path in the mount tree ("anon_inode:[pidfd]", "pipe:[N]"): a
	 * kernel object the agent made or holds, not file system access
	 * (pidfds are opened through file_open since 6.9; Go's os/exec makes
	 * one per child). Not remembered, so file_permission passes it too. */
	if (s->key.path[0] != '/')
		return 0;
	if (!allowed(rights, want))
		return deny(cg, LSM_OP_OPEN, LSM_WHY_NO_RULE, want, s->key.path, 0);
	s->gen = a->gen;
	s->rights = rights;
	__u64 fk = (__u64)file;
	if (bpf_map_update_elem(&files, &fk, s, BPF_ANY))
		return deny(cg, LSM_OP_OPEN, LSM_WHY_MAP_FULL, want, s->key.path, 0);
	return 0;
}

/* file_rights is what the open file f of agent a may do under the rules
 * now: the rights remembered at its open, decided again from its
 * remembered path when the rules changed since (so a revoke cuts
 * descriptors opened before it) and remembered anew; no bpf_d_path here:
 * these hooks are not sleepable. -1: no scratch room (the caller denies). */
static __always_inline long file_rights(struct lsm_agent *a, struct lsm_file *f)
{
	__u32 gen = a->gen;
	if (f->gen != gen || f->key.policy != a->policy) {
		struct lsm_file *s = scratch_file();
		if (!s)
			return -1;
		__builtin_memcpy(&s->key, &f->key, sizeof(s->key));
		s->key.policy = a->policy;
		__u32 *r = bpf_map_lookup_elem(&rules, &s->key);
		f->rights = r ? *r : 0;
		f->key.policy = a->policy;
		f->gen = gen;
	}
	return f->rights;
}

SEC("lsm/file_permission")
int BPF_PROG(cc_file_permission, struct file *file, int mask)
{
	__u64 cg = bpf_get_current_cgroup_id();
	struct lsm_agent *a = bpf_map_lookup_elem(&agents, &cg);
	if (!a)
		return 0;
	__u64 fk = (__u64)file;
	struct lsm_file *f = bpf_map_lookup_elem(&files, &fk);
	/* Not opened by an agent through a path: pipes, sockets, descriptors
	 * handed over by coconutd at spawn (fd passing is closed by the
	 * network guard's Unix allowlist). */
	if (!f)
		return 0;
	__u32 want = 0;
	if (mask & MAY_READ)
		want |= LSM_R;
	if (mask & (MAY_WRITE | MAY_APPEND))
		want |= LSM_W;
	long rights = file_rights(a, f);
	if (rights < 0)
		return deny(cg, want & LSM_W ? LSM_OP_WRITE : LSM_OP_READ, LSM_WHY_MAP_FULL, want, 0, 0);
	if (!allowed(rights, want))
		return deny(cg, want & LSM_W ? LSM_OP_WRITE : LSM_OP_READ, LSM_WHY_NO_RULE, want, f->key.path, 0);
	return 0;
}

SEC("lsm/file_free_security")
int BPF_PROG(cc_file_free, struct file *file)
{
	__u64 fk = (__u64)file;
	bpf_map_delete_elem(&files, &fk);
	return 0;
}

SEC("lsm/bprm_check_security")
int BPF_PROG(cc_bprm_check, struct linux_binprm *bprm)
{
	__u64 cg = bpf_get_current_cgroup_id();
	struct lsm_agent *a = bpf_map_lookup_elem(&agents, &cg);
	if (!a)
		return 0;
	struct lsm_file *s = scratch_file();
	if (!s)
		return deny(cg, LSM_OP_EXEC, LSM_WHY_MAP_FULL, LSM_X, 0, 0);
	struct file *file = bprm->file; /* a BTF pointer, as bpf_d_path needs */
	/* The measured program, exec'd by the trampoline from its memfd. */
	if (measured_rights(cg, file) & LSM_X)
		return 0;
	s->key.path[0] = 0;
	int rights = lookup_path(s, &file->f_path, a->policy);
	if (rights < 0)
		return deny(cg, LSM_OP_EXEC, -rights, LSM_X, s->key.path, 0);
	if (!(rights & LSM_X))
		return deny(cg, LSM_OP_EXEC, LSM_WHY_NO_RULE, LSM_X, s->key.path, 0);
	return 0;
}

static __always_inline __u64 task_cgroup(struct task_struct *t)
{
	return BPF_CORE_READ(t, cgroups, dfl_cgrp, kn, id);
}

/* outside: a process-to-process operation by an agent on a task that is
 * not in the agent's own cgroup. */
static __always_inline int outside(__u16 op, struct task_struct *t)
{
	__u64 cg = bpf_get_current_cgroup_id();
	struct lsm_agent *a = bpf_map_lookup_elem(&agents, &cg);
	if (!a)
		return 0;
	if (task_cgroup(t) == cg)
		return 0;
	return deny(cg, op, LSM_WHY_OUTSIDE, 0, 0, BPF_CORE_READ(t, tgid));
}

SEC("lsm/ptrace_access_check")
int BPF_PROG(cc_ptrace_access, struct task_struct *child, unsigned int mode)
{
	return outside(LSM_OP_PTRACE, child);
}

SEC("lsm/ptrace_traceme")
int BPF_PROG(cc_ptrace_traceme, struct task_struct *parent)
{
	return outside(LSM_OP_PTRACE, parent);
}

SEC("lsm/task_kill")
int BPF_PROG(cc_task_kill, struct task_struct *p)
{
	return outside(LSM_OP_KILL, p);
}

static __always_inline int never(__u16 op)
{
	__u64 cg = bpf_get_current_cgroup_id();
	struct lsm_agent *a = bpf_map_lookup_elem(&agents, &cg);
	if (!a)
		return 0;
	return deny(cg, op, LSM_WHY_NEVER, 0, 0, 0);
}

SEC("lsm/bpf")
int BPF_PROG(cc_bpf, int cmd)
{
	return never(LSM_OP_BPF);
}

SEC("lsm/sb_mount")
int BPF_PROG(cc_sb_mount, const char *dev)
{
	return never(LSM_OP_MOUNT);
}

SEC("lsm/userns_create")
int BPF_PROG(cc_userns_create, const void *cred)
{
	return never(LSM_OP_USERNS);
}

SEC("lsm/move_mount")
int BPF_PROG(cc_move_mount, const struct path *from)
{
	return never(LSM_OP_MOUNT);
}

#define AF_UNIX 1

/* unix_addr checks a Unix socket address (a kernel copy of the caller's
 * sockaddr) against the agent's unix_rules: 0, or a deny. */
static __always_inline int unix_addr(__u16 op, void *addr, int addrlen)
{
	__u64 cg = bpf_get_current_cgroup_id();
	struct lsm_agent *a = bpf_map_lookup_elem(&agents, &cg);
	if (!a || !addr)
		return 0;
	__u16 family = 0;
	bpf_probe_read_kernel(&family, sizeof(family), addr);
	if (family != AF_UNIX)
		return 0;
	struct lsm_file *s = scratch_file();
	if (!s)
		return deny(cg, op, LSM_WHY_MAP_FULL, 0, 0, 0);
	/* The key is built in the scratch slot's path bytes. */
	struct lsm_unix_key *k = (void *)&s->key;
	__builtin_memset(k, 0, sizeof(*k));
	if (addrlen <= 2)
		return 0; /* unnamed: autobind or a socketpair peer, nothing to name */
	__u32 n = addrlen - 2;
	if (n > LSM_UNIX_PATH)
		n = LSM_UNIX_PATH;
	if (bpf_probe_read_kernel(k->path, LSM_UNIX_PATH, addr + 2) < 0)
		return deny(cg, op, LSM_WHY_D_PATH, 0, 0, 0);
	__u32 len = n;
	if (k->path[0] != 0) {
		/* A pathname ends at its first NUL. */
		for (__u32 i = 0; i < LSM_UNIX_PATH; i++) {
			if (i >= n || k->path[i] == 0) {
				len = i;
				break;
			}
		}
	}
	for (__u32 i = 0; i < LSM_UNIX_PATH; i++)
		if (i >= len)
			k->path[i] = 0;
	k->len = len;
	k->policy = a->policy;
	if (bpf_map_lookup_elem(&unix_rules, k))
		return 0;
	/* The event shows an abstract name with a leading '@'. */
	char *p = (char *)k->path;
	if (p[0] == 0)
		p[0] = '@';
	p[LSM_UNIX_PATH - 1] = 0;
	__builtin_memcpy(s->key.path, k->path, LSM_UNIX_PATH);
	return deny(cg, op, LSM_WHY_NO_RULE, 0, s->key.path, 0);
}

SEC("lsm/socket_connect")
int BPF_PROG(cc_socket_connect, struct socket *sock, void *address, int addrlen)
{
	return unix_addr(LSM_OP_CONNECT_UNIX, address, addrlen);
}

SEC("lsm/socket_sendmsg")
int BPF_PROG(cc_socket_sendmsg, struct socket *sock, struct msghdr *msg, int size)
{
	/* No address: a connected socket, checked at connect. */
	return unix_addr(LSM_OP_SENDMSG_UNIX, msg->msg_name, msg->msg_namelen);
}

SEC("lsm/mmap_file")
int BPF_PROG(cc_mmap_file, struct file *file, unsigned long reqprot, unsigned long prot)
{
	if (!file || !(prot & PROT_EXEC))
		return 0;
	__u64 cg = bpf_get_current_cgroup_id();
	struct lsm_agent *a = bpf_map_lookup_elem(&agents, &cg);
	if (!a)
		return 0;
	struct lsm_file *s = scratch_file();
	if (!s)
		return deny(cg, LSM_OP_MMAP_EXEC, LSM_WHY_MAP_FULL, LSM_X, 0, 0);
	/* The measured program's segments, mapped by the ELF loader. */
	if (measured_rights(cg, file) & (LSM_X | LSM_M))
		return 0;
	s->key.path[0] = 0;
	int rights = lookup_path(s, &file->f_path, a->policy);
	if (rights < 0)
		return deny(cg, LSM_OP_MMAP_EXEC, -rights, LSM_X, s->key.path, 0);
	if (s->key.path[0] != '/')
		return 0; /* pathless, as in file_open */
	if (!(rights & (LSM_X | LSM_M)))
		return deny(cg, LSM_OP_MMAP_EXEC, LSM_WHY_NO_RULE, LSM_X, s->key.path, 0);
	return 0;
}

/* mprotect to PROT_EXEC of a file mapping: not sleepable (no bpf_d_path),
 * so the file's remembered open decides; a file the agent did not open by
 * path (no entry) was mapped exec-checked or not at all by mmap_file. */
SEC("lsm/file_mprotect")
int BPF_PROG(cc_file_mprotect, struct vm_area_struct *vma, unsigned long reqprot, unsigned long prot)
{
	if (!(prot & PROT_EXEC))
		return 0;
	__u64 cg = bpf_get_current_cgroup_id();
	struct lsm_agent *a = bpf_map_lookup_elem(&agents, &cg);
	if (!a)
		return 0;
	struct file *file = vma->vm_file;
	if (!file)
		return 0; /* anonymous memory: JITs; not a file's code */
	__u64 fk = (__u64)file;
	struct lsm_file *f = bpf_map_lookup_elem(&files, &fk);
	if (!f)
		return 0;
	long rights = file_rights(a, f);
	if (rights < 0)
		return deny(cg, LSM_OP_MMAP_EXEC, LSM_WHY_MAP_FULL, LSM_X, 0, 0);
	if (!(rights & (LSM_X | LSM_M)))
		return deny(cg, LSM_OP_MMAP_EXEC, LSM_WHY_NO_RULE, LSM_X, f->key.path, 0);
	return 0;
}

/* ---- The path hooks ------------------------------------------------
 *
 * Making, removing, renaming and linking names, truncation, mode, owner
 * and extended attributes: each needs fs.write on the path it names, as
 * the portable policy decides them (the supervisor's operands: the new
 * name of a create, the name removed, both names of a rename or link).
 * These hooks are not sleepable, so bpf_d_path is refused in them
 * (kernel/trace/bpf_trace.c, bpf_d_path_allowed): cc_walk builds the
 * path itself from the dentry, the way d_path does for the caller's
 * root, bounded.
 */

/* ARG(n): the hook's n-th argument as a plain number. The verifier lets
 * a global function take scalars only, and a pointer argument of the hook
 * is a typed (BTF) pointer; a probe read of the context slot gives its
 * value without the type. */
#define ARG(n)                                                        \
	({                                                            \
		__u64 __v = 0;                                        \
		bpf_probe_read_kernel(&__v, sizeof(__v), &ctx[n]);    \
		__v;                                                  \
	})

/* cc_walk results besides a length and the lsm_reason values. */
#define LSM_WALK_INTERNAL 100  /* on a mount outside the caller's mount namespace */
#define LSM_WALK_NOT_UNDER 101 /* the dentry is not below that mount's root */

/* walk_ctx is one walk's state between bpf_loop steps: kernel addresses
 * as numbers, read with probe reads (CO-RE offsets). */
struct walk_ctx {
	__u64 d, vm, m;      /* the dentry, its vfsmount and struct mount */
	__u64 root_d, root_m; /* the caller's root */
	__u64 ns;             /* the caller's mount namespace */
	__u64 moff;           /* offsetof(struct mount, mnt) */
	__u32 pos;            /* the path starts at buf[pos] */
	int ret;              /* 0: going on, 1: done, < 0: -reason */
};

/* walk_step prepends one name, or crosses one mount point: a bpf_loop
 * callback, so the verifier checks one step, not LSM_WALK_STEPS of them.
 * Every index is masked, so its bounds hold whatever the step before did. */
static long walk_step(__u32 i, void *arg)
{
	struct walk_ctx *c = arg;
	__u32 zero = 0;
	struct lsm_walk *w = bpf_map_lookup_elem(&walkbuf, &zero);
	if (!w) {
		c->ret = -LSM_WHY_MAP_FULL;
		return 1;
	}
	if (c->d == c->root_d && c->vm == c->root_m) {
		c->ret = 1;
		return 1;
	}
	struct dentry *d = (void *)c->d;
	struct vfsmount *vm = (void *)c->vm;
	struct mount *m = (void *)c->m;
	if ((__u64)BPF_CORE_READ(vm, mnt_root) == c->d) {
		struct mount *parent = BPF_CORE_READ(m, mnt_parent);
		if (parent == m || !parent) {
			/* The top of a mount tree: the caller's namespace (its
			 * root is above the task's root, as d_path allows) or
			 * none it can name (kern_mount: memfds, pipes, sockets;
			 * a lazily unmounted tree). */
			c->ret = (__u64)BPF_CORE_READ(m, mnt_ns) == c->ns ? 1 : -LSM_WALK_INTERNAL;
			return 1;
		}
		c->d = (__u64)BPF_CORE_READ(m, mnt_mountpoint);
		c->m = (__u64)parent;
		c->vm = (__u64)parent + c->moff;
		return 0;
	}
	struct dentry *up = BPF_CORE_READ(d, d_parent);
	if (!up || (__u64)up == c->d) {
		c->ret = -LSM_WALK_NOT_UNDER;
		return 1;
	}
	__u32 len = BPF_CORE_READ(d, d_name.len);
	const unsigned char *name = BPF_CORE_READ(d, d_name.name);
	__u32 pos = c->pos & (LSM_WALK_END - 1);
	if (len + 1 >= pos) {
		c->ret = -LSM_WHY_PATH_TOO_LONG;
		return 1;
	}
	/* The masks change nothing (len + 1 < pos <= 255) but give the
	 * verifier its bounds: pos + len < LSM_WALK_BUF. */
	pos = (pos - len) & (LSM_WALK_END - 1);
	len &= LSM_WALK_END - 1;
	if (bpf_probe_read_kernel(&w->buf[pos], len, name) < 0) {
		c->ret = -LSM_WHY_D_PATH;
		return 1;
	}
	pos = (pos - 1) & (LSM_WALK_END - 1);
	w->buf[pos] = '/';
	c->pos = pos;
	c->d = (__u64)up;
	return 0;
}

/* cc_walk writes the path of dentry seen through vfsmnt into the scratch
 * key's path, NUL included, and returns its length in bytes, or minus a
 * reason (LSM_WHY_*, LSM_WALK_*). Names are prepended from the dentry up
 * to the caller's root, crossing mount points, as d_path does, at most
 * LSM_WALK_STEPS steps (bpf_loop). A global function: the verifier checks
 * it once per program, not at every call. Unlike d_path it takes no rename
 * lock: a path renamed while it is read can come out mixed, and is then
 * decided as read (a deny, unless the mix names a writable path). */
__attribute__((noinline)) int cc_walk(__u64 dentry_addr, __u64 vfsmnt_addr)
{
	__u32 zero = 0;
	struct lsm_walk *w = bpf_map_lookup_elem(&walkbuf, &zero);
	struct lsm_file *s = bpf_map_lookup_elem(&scratch, &zero);
	if (!w || !s)
		return -LSM_WHY_MAP_FULL;
	struct task_struct *t = (void *)bpf_get_current_task();
	struct walk_ctx c = {};
	c.root_d = (__u64)BPF_CORE_READ(t, fs, root.dentry);
	c.root_m = (__u64)BPF_CORE_READ(t, fs, root.mnt);
	c.ns = (__u64)BPF_CORE_READ(t, nsproxy, mnt_ns);
	c.moff = bpf_core_field_offset(struct mount, mnt);
	c.d = dentry_addr;
	c.vm = vfsmnt_addr;
	c.m = vfsmnt_addr - c.moff;
	c.pos = LSM_WALK_END - 1;
	w->buf[LSM_WALK_END - 1] = 0;
	bpf_loop(LSM_WALK_STEPS, walk_step, &c, 0);
	if (c.ret == 0)
		return -LSM_WHY_PATH_TOO_LONG; /* more steps than LSM_WALK_STEPS */
	if (c.ret < 0)
		return c.ret;
	__u32 pos = c.pos & (LSM_WALK_END - 1);
	if (pos == LSM_WALK_END - 1) {
		pos--; /* the root itself: "/" */
		w->buf[pos] = '/';
	}
	__u32 n = LSM_WALK_END - pos;
	/* Keep the compiler from folding the check into one on pos: the
	 * verifier must see it on n, the size read. */
	asm volatile("" : "+r"(n));
	if (n > LSM_PATH_MAX)
		return -LSM_WHY_PATH_TOO_LONG;
	if (bpf_probe_read_kernel(s->key.path, n, &w->buf[pos & (LSM_WALK_END - 1)]) < 0)
		return -LSM_WHY_D_PATH;
	return n;
}

/* walked decides a cc_walk result n (the path in s->key) for agent a:
 * fs.write on it, or a deny. */
static __always_inline int walked(__u64 cg, struct lsm_agent *a, struct lsm_file *s, __u16 op, int n)
{
	if (n == -LSM_WALK_INTERNAL)
		return 0; /* not a path of the agent's file tree, as in file_open */
	if (n < 0 || n > LSM_PATH_MAX) {
		__u16 why = LSM_WHY_D_PATH;
		if (n == -LSM_WHY_PATH_TOO_LONG || n > LSM_PATH_MAX)
			why = LSM_WHY_PATH_TOO_LONG;
		else if (n == -LSM_WHY_MAP_FULL)
			why = LSM_WHY_MAP_FULL;
		return deny(cg, op, why, LSM_W, 0, 0);
	}
	s->key.prefixlen = 32 + n * 8;
	s->key.policy = a->policy;
	__u32 *r = bpf_map_lookup_elem(&rules, &s->key);
	if (!allowed(r ? *r : 0, LSM_W))
		return deny(cg, op, LSM_WHY_NO_RULE, LSM_W, s->key.path, 0);
	return 0;
}

/* name_write: fs.write on dentry's path through vfsmnt. */
static __always_inline int name_write(__u64 cg, struct lsm_agent *a, __u16 op, __u64 dentry, __u64 vfsmnt)
{
	struct lsm_file *s = scratch_file();
	if (!s)
		return deny(cg, op, LSM_WHY_MAP_FULL, LSM_W, 0, 0);
	s->key.path[0] = 0;
	return walked(cg, a, s, op, cc_walk(dentry, vfsmnt));
}

static __always_inline int dir_entry(__u16 op, const struct path *dir, __u64 dentry)
{
	__u64 cg = bpf_get_current_cgroup_id();
	struct lsm_agent *a = bpf_map_lookup_elem(&agents, &cg);
	if (!a)
		return 0;
	return name_write(cg, a, op, dentry, (__u64)BPF_CORE_READ(dir, mnt));
}

static __always_inline int whole_path(__u16 op, const struct path *p)
{
	__u64 cg = bpf_get_current_cgroup_id();
	struct lsm_agent *a = bpf_map_lookup_elem(&agents, &cg);
	if (!a)
		return 0;
	return name_write(cg, a, op, (__u64)BPF_CORE_READ(p, dentry), (__u64)BPF_CORE_READ(p, mnt));
}

SEC("lsm/path_unlink")
int BPF_PROG(cc_path_unlink, const struct path *dir, struct dentry *dentry)
{
	return dir_entry(LSM_OP_UNLINK, dir, ARG(1));
}

SEC("lsm/path_rmdir")
int BPF_PROG(cc_path_rmdir, const struct path *dir, struct dentry *dentry)
{
	return dir_entry(LSM_OP_RMDIR, dir, ARG(1));
}

SEC("lsm/path_mkdir")
int BPF_PROG(cc_path_mkdir, const struct path *dir, struct dentry *dentry, unsigned short mode)
{
	return dir_entry(LSM_OP_MKDIR, dir, ARG(1));
}

/* Every new non-directory but a symlink: mknod(2), an open with O_CREAT
 * (may_o_create, before file_open) and the bind of a Unix socket path. */
SEC("lsm/path_mknod")
int BPF_PROG(cc_path_mknod, const struct path *dir, struct dentry *dentry, unsigned short mode, unsigned int dev)
{
	return dir_entry(LSM_OP_MKNOD, dir, ARG(1));
}

SEC("lsm/path_symlink")
int BPF_PROG(cc_path_symlink, const struct path *dir, struct dentry *dentry, const char *old_name)
{
	return dir_entry(LSM_OP_SYMLINK, dir, ARG(1));
}

/* A hard link gives the file a second name, and that name's rights: the
 * file linked needs fs.write as well as the new name. Both are on one
 * mount (do_linkat refuses EXDEV before this hook). */
SEC("lsm/path_link")
int BPF_PROG(cc_path_link, struct dentry *old_dentry, const struct path *new_dir, struct dentry *new_dentry)
{
	__u64 cg = bpf_get_current_cgroup_id();
	struct lsm_agent *a = bpf_map_lookup_elem(&agents, &cg);
	if (!a)
		return 0;
	__u64 mnt = (__u64)BPF_CORE_READ(new_dir, mnt);
	int r = name_write(cg, a, LSM_OP_LINK, ARG(0), mnt);
	if (r)
		return r;
	return name_write(cg, a, LSM_OP_LINK, ARG(2), mnt);
}

/* Both names (RENAME_EXCHANGE moves both ways: the same two checks). */
SEC("lsm/path_rename")
int BPF_PROG(cc_path_rename, const struct path *old_dir, struct dentry *old_dentry, const struct path *new_dir,
	     struct dentry *new_dentry, unsigned int flags)
{
	__u64 cg = bpf_get_current_cgroup_id();
	struct lsm_agent *a = bpf_map_lookup_elem(&agents, &cg);
	if (!a)
		return 0;
	int r = name_write(cg, a, LSM_OP_RENAME, ARG(1), (__u64)BPF_CORE_READ(old_dir, mnt));
	if (r)
		return r;
	return name_write(cg, a, LSM_OP_RENAME, ARG(3), (__u64)BPF_CORE_READ(new_dir, mnt));
}

/* truncate(2); before Linux 6.2 also ftruncate and O_TRUNC opens. */
SEC("lsm/path_truncate")
int BPF_PROG(cc_path_truncate, const struct path *path)
{
	return whole_path(LSM_OP_TRUNCATE, path);
}

/* ftruncate and O_TRUNC opens from Linux 6.2 (absent before: Open leaves
 * it out where the kernel has no such hook). Decided like
 * file_permission: on the decision remembered at open, made again after
 * a rules change; a file the agent did not open by path passes. */
SEC("lsm/file_truncate")
int BPF_PROG(cc_file_truncate, struct file *file)
{
	__u64 cg = bpf_get_current_cgroup_id();
	struct lsm_agent *a = bpf_map_lookup_elem(&agents, &cg);
	if (!a)
		return 0;
	__u64 fk = (__u64)file;
	struct lsm_file *f = bpf_map_lookup_elem(&files, &fk);
	if (!f)
		return 0;
	long rights = file_rights(a, f);
	if (rights < 0)
		return deny(cg, LSM_OP_TRUNCATE, LSM_WHY_MAP_FULL, LSM_W, 0, 0);
	if (!allowed(rights, LSM_W))
		return deny(cg, LSM_OP_TRUNCATE, LSM_WHY_NO_RULE, LSM_W, f->key.path, 0);
	return 0;
}

SEC("lsm/path_chmod")
int BPF_PROG(cc_path_chmod, const struct path *path, unsigned short mode)
{
	return whole_path(LSM_OP_CHMOD, path);
}

SEC("lsm/path_chown")
int BPF_PROG(cc_path_chown, const struct path *path)
{
	return whole_path(LSM_OP_CHOWN, path);
}

/* Mounts of one superblock looked at for an xattr's path. */
#define LSM_XATTR_MOUNTS 16

/* xattr: the inode hooks have a dentry and no mount. The path is taken
 * through the first mount of the dentry's superblock in the caller's
 * mount namespace that has the dentry below its root (bind mounts give
 * one inode several names; the attribute is the inode's, so any name the
 * agent may write is as good as the one it used, and one it may not is a
 * deny). A superblock with no mount in the namespace (memfd, sockets) is
 * not the agent's file tree and passes, as in file_open; a mount list
 * longer than LSM_XATTR_MOUNTS without a match is a deny. */
static __always_inline int xattr(__u16 op, __u64 dentry_addr)
{
	struct dentry *dentry = (void *)dentry_addr;
	__u64 cg = bpf_get_current_cgroup_id();
	struct lsm_agent *a = bpf_map_lookup_elem(&agents, &cg);
	if (!a)
		return 0;
	struct lsm_file *s = scratch_file();
	if (!s)
		return deny(cg, op, LSM_WHY_MAP_FULL, LSM_W, 0, 0);
	s->key.path[0] = 0;
	struct task_struct *t = (void *)bpf_get_current_task();
	__u64 ns = (__u64)BPF_CORE_READ(t, nsproxy, mnt_ns);
	__u64 ioff = bpf_core_field_offset(struct mount, mnt_instance);
	__u64 moff = bpf_core_field_offset(struct mount, mnt);
	struct super_block *sb = BPF_CORE_READ(dentry, d_sb);
	__u64 head = (__u64)sb + bpf_core_field_offset(struct super_block, s_mounts);
	struct list_head *pos = BPF_CORE_READ(sb, s_mounts.next);
	int seen = 0;
	for (int i = 0; i < LSM_XATTR_MOUNTS; i++) {
		if (!pos || (__u64)pos == head)
			return seen ? deny(cg, op, LSM_WHY_D_PATH, LSM_W, 0, 0) : 0;
		__u64 m = (__u64)pos - ioff;
		if ((__u64)BPF_CORE_READ((struct mount *)m, mnt_ns) == ns) {
			seen = 1;
			int n = cc_walk(dentry_addr, m + moff);
			if (n != -LSM_WALK_NOT_UNDER)
				return walked(cg, a, s, op, n);
		}
		pos = BPF_CORE_READ(pos, next);
	}
	return deny(cg, op, LSM_WHY_D_PATH, LSM_W, 0, 0);
}

SEC("lsm/inode_setxattr")
int BPF_PROG(cc_inode_setxattr, void *idmap, struct dentry *dentry)
{
	return xattr(LSM_OP_SETXATTR, ARG(1));
}

SEC("lsm/inode_removexattr")
int BPF_PROG(cc_inode_removexattr, void *idmap, struct dentry *dentry)
{
	return xattr(LSM_OP_REMOVEXATTR, ARG(1));
}

/* POSIX ACLs set through setxattr come here instead of inode_setxattr
 * from Linux 6.2 (absent before: inode_setxattr sees them there). */
SEC("lsm/inode_set_acl")
int BPF_PROG(cc_inode_set_acl, void *idmap, struct dentry *dentry)
{
	return xattr(LSM_OP_SETXATTR, ARG(1));
}

SEC("lsm/inode_remove_acl")
int BPF_PROG(cc_inode_remove_acl, void *idmap, struct dentry *dentry)
{
	return xattr(LSM_OP_REMOVEXATTR, ARG(1));
}
