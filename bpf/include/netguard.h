/* Shared layout of the netguard maps and events. The Go side does not copy
 * these by hand: bpf2go generates matching types (-type), so a change here
 * that is not regenerated fails CI's diff check. */
#ifndef COCONUT_NETGUARD_H
#define COCONUT_NETGUARD_H

#include <linux/types.h>

/* ECAPABILITY (api.ECapability): the first errno above EHWPOISON (133). */
#define ECAPABILITY 134

#define NG_AF_UNIX 1
#define NG_AF_INET 2
#define NG_AF_INET6 10
#define NG_SOCK_STREAM 1
#define NG_SOCK_DGRAM 2
#define NG_IPPROTO_TCP 6
#define NG_IPPROTO_UDP 17

/* Capability verbs as stored in rule keys. */
enum ng_verb {
	NG_VERB_CONNECT = 0,
	NG_VERB_BIND = 1,
	NG_VERB_CREATE = 2, /* socket creation: only in events, never in rules */
};

/* Which hook denied. connect and sendmsg both check the connect verb. */
enum ng_op {
	NG_OP_CONNECT = 0,
	NG_OP_SENDMSG = 1,
	NG_OP_BIND = 2,
	NG_OP_SOCK_CREATE = 3,
};

/* policy_flags values: what a policy wants recorded beside its denies. */
#define NG_FLAG_AUDIT_CONNECT 1 /* every allowed connect(2) becomes an event */

/* event.flags */
#define NG_EV_ALLOWED 1 /* an allowed use the audit policy asked for, not a deny */

/* Most port ranges one rule holds after userspace has folded and merged the
 * ranges of every less specific prefix into it. */
#define NG_MAX_RANGES 32

/* LPM trie key. prefixlen counts bits after itself: 64 for policy, verb,
 * family and pad (always matched exactly), plus the address prefix length.
 * IPv4 rules keep their 4 bytes at addr[0..3] under family NG_AF_INET;
 * an IPv4-mapped IPv6 peer is looked up as IPv4. */
struct lpm_key {
	__u32 prefixlen;
	__u32 policy;
	__u8 verb;
	__u8 family;
	__u8 pad[2];
	__u8 addr[16];
};

struct port_range {
	__u16 lo;
	__u16 hi;
};

struct port_ranges {
	__u32 n;
	struct port_range r[NG_MAX_RANGES];
};

/* One deny (or, with NG_EV_ALLOWED, one allowed connect), as written to
 * the ring buffer. */
struct event {
	__u64 seq;       /* kernel-side, from 1, no gaps unless the ring was full;
	                  * allowed uses have their own sequence (use_seq) */
	__u64 cgroup_id;
	__u32 pid;       /* thread group id */
	__u8 op;         /* enum ng_op */
	__u8 verb;       /* enum ng_verb */
	__u8 family;     /* NG_AF_INET, NG_AF_INET6 or NG_AF_UNIX */
	__u8 flags;      /* NG_EV_* */
	__u16 type;      /* SOCK_* */
	__u16 protocol;  /* IPPROTO_* as the socket has it */
	__u16 port;      /* host order; 0 for sock_create */
	__u16 pad2;
	__u8 addr[16];   /* IPv4 in the first 4 bytes */
};

/* sun_path's size: a Unix socket address has at most this many bytes. */
#define NG_UNIX_PATH 108

/* unix_rules key: a policy's allowed Unix socket address, exactly as the
 * kernel compares it. A pathname is its bytes up to the first NUL; an
 * abstract name is its leading NUL and every byte after it, up to the
 * address length (abstract names are length-delimited, so len is part of
 * the key: "@a" and "@a\0" are different sockets). Unused bytes are zero. */
struct unix_key {
	__u32 policy;
	__u32 len;
	__u8 path[NG_UNIX_PATH];
};

/* A denied Unix connect or sendto: an event (family NG_AF_UNIX, no address
 * or port) followed by the address as in unix_key. Its size tells it from
 * an inet event in the ring buffer. */
struct unix_event {
	struct event hdr;
	__u32 len;
	__u8 path[NG_UNIX_PATH];
};

#endif
