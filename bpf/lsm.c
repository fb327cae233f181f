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
};
struct socket;
struct vfsmount;
struct dentry;
struct super_block {
	unsigned int s_dev;
};
struct inode {
	unsigned long i_ino;
	struct super_block *i_sb;
};
struct path {
	struct vfsmount *mnt;
	struct dentry *dentry;
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
	__u32 gen = a->gen;
	if (f->gen != gen || f->key.policy != a->policy) {
		/* The rules changed since the open: decide the remembered path
		 * again (no bpf_d_path here: file_permission is not sleepable). */
		struct lsm_file *s = scratch_file();
		if (!s)
			return deny(cg, want & LSM_W ? LSM_OP_WRITE : LSM_OP_READ, LSM_WHY_MAP_FULL, want, 0, 0);
		__builtin_memcpy(&s->key, &f->key, sizeof(s->key));
		s->key.policy = a->policy;
		__u32 *r = bpf_map_lookup_elem(&rules, &s->key);
		f->rights = r ? *r : 0;
		f->key.policy = a->policy;
		f->gen = gen;
	}
	if (!allowed(f->rights, want))
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
	__u32 rights = f->rights;
	if (f->gen != a->gen || f->key.policy != a->policy) {
		struct lsm_file *s = scratch_file();
		if (!s)
			return deny(cg, LSM_OP_MMAP_EXEC, LSM_WHY_MAP_FULL, LSM_X, 0, 0);
		__builtin_memcpy(&s->key, &f->key, sizeof(s->key));
		s->key.policy = a->policy;
		__u32 *r = bpf_map_lookup_elem(&rules, &s->key);
		rights = r ? *r : 0;
	}
	if (!(rights & (LSM_X | LSM_M)))
		return deny(cg, LSM_OP_MMAP_EXEC, LSM_WHY_NO_RULE, LSM_X, f->key.path, 0);
	return 0;
}
