/* Shared layout of the bpf-lsm maps and events. bpf2go generates the Go
 * types from these (-type), so a change that is not regenerated fails CI's
 * diff check. */
#ifndef COCONUT_LSM_H
#define COCONUT_LSM_H

#include <linux/types.h>

/* ECAPABILITY (api.ECapability): the first errno above EHWPOISON (133). */
#define ECAPABILITY 134

/* Path bytes in a rule key: the kernel's largest LPM key is 260 bytes,
 * 4 of prefixlen, 4 of policy id, 252 of path (NUL included). */
#define LSM_PATH_MAX 252

/* Rights in a rule value. Read is implied by write and exec, as in the
 * portable policy: the program checks R against R|W|X. */
#define LSM_R 1
#define LSM_W 2
#define LSM_X 4
/* Map as code (mmap/mprotect with PROT_EXEC): implied by LSM_X; the
 * baseline's system library directories and ELF interpreter have it alone. */
#define LSM_M 8

/* Which hook denied. */
enum lsm_op {
	LSM_OP_OPEN = 1,
	LSM_OP_READ = 2,  /* file_permission, a read on an open descriptor */
	LSM_OP_WRITE = 3, /* file_permission, a write on an open descriptor */
	LSM_OP_EXEC = 4,
	LSM_OP_PTRACE = 5,
	LSM_OP_KILL = 6,
	LSM_OP_BPF = 7,
	LSM_OP_MOUNT = 8,
	LSM_OP_CONNECT_UNIX = 9, /* socket_connect to a Unix socket address */
	LSM_OP_SENDMSG_UNIX = 10, /* socket_sendmsg with a Unix socket address */
	LSM_OP_MMAP_EXEC = 11,    /* mmap_file / file_mprotect with PROT_EXEC */
	LSM_OP_USERNS = 12,       /* userns_create: a new user namespace */
	/* The path hooks: each needs fs.write on the path named (both
	 * names for rename and link), as the portable policy decides them. */
	LSM_OP_UNLINK = 13,      /* path_unlink */
	LSM_OP_RMDIR = 14,       /* path_rmdir */
	LSM_OP_MKDIR = 15,       /* path_mkdir */
	LSM_OP_MKNOD = 16,       /* path_mknod: O_CREAT, mknod, a Unix socket's bind */
	LSM_OP_SYMLINK = 17,     /* path_symlink: the new name */
	LSM_OP_LINK = 18,        /* path_link: the file linked, then the new name */
	LSM_OP_RENAME = 19,      /* path_rename: the old name, then the new one */
	LSM_OP_TRUNCATE = 20,    /* path_truncate, file_truncate */
	LSM_OP_CHMOD = 21,       /* path_chmod */
	LSM_OP_CHOWN = 22,       /* path_chown */
	LSM_OP_SETXATTR = 23,    /* inode_setxattr, inode_set_acl */
	LSM_OP_REMOVEXATTR = 24, /* inode_removexattr, inode_remove_acl */
};

/* sun_path's size. */
#define LSM_UNIX_PATH 108

/* unix_rules key: an allowed Unix socket address as the kernel compares
 * it (netguard's unix_key): a pathname is its bytes up to the first NUL,
 * an abstract name its leading NUL and every byte up to the address
 * length. Unused bytes are zero. */
struct lsm_unix_key {
	__u32 policy;
	__u32 len;
	__u8 path[LSM_UNIX_PATH];
};

/* Why. Every reason but NO_RULE is a failure to decide, denied all the same. */
enum lsm_reason {
	LSM_WHY_NO_RULE = 1,       /* no rule of the agent grants it (or a revoke took it) */
	LSM_WHY_PATH_TOO_LONG = 2, /* the path does not fit LSM_PATH_MAX */
	LSM_WHY_D_PATH = 3,        /* bpf_d_path failed */
	LSM_WHY_MAP_FULL = 4,      /* the open file's decision could not be remembered */
	LSM_WHY_OUTSIDE = 5,       /* ptrace or signal to a process outside the agent's cgroup */
	LSM_WHY_NEVER = 6,         /* bpf() and mounts: never allowed to an agent */
};

/* The path hooks build a path from a dentry (bpf_d_path is allowed only
 * in sleepable hooks, which these are not): names are prepended into a
 * buffer of LSM_WALK_BUF bytes from byte LSM_WALK_END down, at most
 * LSM_WALK_STEPS dentries and mount crossings. */
#define LSM_WALK_BUF 512
#define LSM_WALK_END 256
#define LSM_WALK_STEPS 160

struct lsm_walk {
	char buf[LSM_WALK_BUF];
};

/* LPM trie key. prefixlen counts bits after itself: 32 for the policy id
 * (always matched exactly) plus 8 per path byte. A directory rule ends in
 * '/' (the trie matches bytes, not components); a file rule includes the
 * terminating NUL, so /a/b does not match /a/bc. */
struct lsm_key {
	__u32 prefixlen;
	__u32 policy;
	char path[LSM_PATH_MAX];
};

/* agents map value, by cgroup id. gen changes with every update of the
 * agent's rules: an open file decided under another gen is decided again. */
struct lsm_agent {
	__u32 policy;
	__u32 gen;
};

/* files map value, by struct file address: the decision made at open. */
struct lsm_file {
	__u32 gen;
	__u32 rights;
	struct lsm_key key; /* the path looked up, to decide again after a revoke */
};

/* measured map key: a sealed memfd coconutd measured for one agent (its
 * program or script), which the trampoline execs and an interpreter reads
 * through /proc/self/fd. It has no path a rule could name ("/memfd:...
 * (deleted)"), so it is allowed by identity, only to that agent's cgroup.
 * dev is the kernel's encoding of the superblock's dev_t (MAJOR << 20 |
 * MINOR). The value holds the rights (LSM_R|LSM_X|LSM_M or LSM_R). */
struct lsm_measured_key {
	__u64 cgroup;
	__u64 ino;
	__u32 dev;
	__u32 pad;
};

struct lsm_event {
	__u64 seq; /* deny_seq after this deny: consecutive, no gaps but losses */
	__u64 cgroup;
	__u32 pid;
	__u32 target_pid; /* ptrace and kill */
	__u16 op;         /* enum lsm_op */
	__u16 reason;     /* enum lsm_reason */
	__u32 want;       /* LSM_R|LSM_W|LSM_X asked */
	char path[LSM_PATH_MAX];
};

#endif
