//go:build ignore

/* netguard: coconut's in-kernel network capability check (portable backend).
 *
 * Attached to coconut's cgroup subtree root. Every hook first maps the
 * calling task's cgroup to a policy id; a task whose cgroup is not bound
 * passes at once (one helper call and one hash lookup), so processes that
 * are not agents see almost no cost. For agents, connect/sendmsg check the
 * net.connect rules and bind the net.bind rules of the agent's policy: an
 * LPM trie keyed {policy, verb, family, address} whose value lists the allowed
 * port ranges. Userspace folds every less specific prefix's ranges into the
 * more specific entries, so the longest match alone decides. sock_create
 * refuses every AF_INET/AF_INET6 socket that is not TCP or UDP (raw sockets,
 * SCTP, ping sockets...).
 *
 * A deny sets ECAPABILITY, takes the next value of a global sequence counter
 * and writes an event to the ring buffer; when the ring is full it counts
 * the loss instead, so denies == events delivered + ringbuf_full. A policy
 * flagged NG_FLAG_AUDIT_CONNECT (the manifest's `audit: connect:`) also
 * gets an event for every allowed connect, numbered by use_seq; when that
 * event cannot be reserved the connect is denied instead.
 *
 * The inet programs read only uapi context fields (bpf_sock_addr,
 * bpf_sock) that the verifier rewrites for the running kernel. The Unix
 * programs at the end read the address from kernel structs through CO-RE
 * relocations (see there).
 */

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_core_read.h>

#include "netguard.h"

char __license[] SEC("license") = "Dual MIT/GPL";

/* Cgroup level of the agent directories (the subtree root's level + 1),
 * set at load. A task bound nowhere is looked up once more by its ancestor at
 * this level, so a process in a cgroup nested under an agent's is still
 * that agent's. 0 disables the second lookup. */
const volatile __u32 agent_level = 0;

/* Deny sequence: the last number handed out, so it is also the deny count. */
__u64 deny_seq = 0;
/* Denies whose event could not be reserved in the ring buffer. */
__u64 ringbuf_full = 0;
/* Allowed uses recorded (policies with NG_FLAG_AUDIT_CONNECT). */
__u64 use_seq = 0;

/* Per policy: what it wants recorded beyond denies (NG_FLAG_*). A policy
 * without an entry records denies only. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);   /* policy id */
	__type(value, __u32); /* NG_FLAG_* */
} policy_flags SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);   /* cgroup id (the cgroup2 directory's inode) */
	__type(value, __u32); /* policy id */
} agents SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm_key);
	__type(value, struct port_ranges);
} rules SEC(".maps");

/* 8 MiB, a power of two as the kernel requires: about 150k records of 56
 * bytes (48 of event, 8 of ring header), enough for a 100k-deny burst
 * even when the reader is briefly descheduled. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20);
} events SEC(".maps");

/* No map names struct event (a ring buffer has no value type): this makes
 * its BTF, and so bpf2go's Go type, exist. */
const struct event *unused_event __attribute__((unused));

static __always_inline __u32 *agent_policy(__u64 *cgroup)
{
	__u64 id = bpf_get_current_cgroup_id();
	__u32 *policy = bpf_map_lookup_elem(&agents, &id);

	if (policy) {
		*cgroup = id;
		return policy;
	}
	if (!agent_level)
		return 0;
	__u64 anc = bpf_get_current_ancestor_cgroup_id(agent_level);
	if (!anc || anc == id)
		return 0;
	policy = bpf_map_lookup_elem(&agents, &anc);
	if (policy)
		*cgroup = anc;
	return policy;
}

struct deny_info {
	__u64 cgroup;
	__u8 op;
	__u8 verb;
	__u8 family;
	__u16 type;
	__u16 protocol;
	__u16 port;
	const __u8 *addr; /* 16 bytes */
};

static __always_inline void fill(struct event *e, const struct deny_info *d, __u64 seq, __u8 flags)
{
	e->seq = seq;
	e->cgroup_id = d->cgroup;
	e->pid = bpf_get_current_pid_tgid() >> 32;
	e->op = d->op;
	e->verb = d->verb;
	e->family = d->family;
	e->flags = flags;
	e->type = d->type;
	e->protocol = d->protocol;
	e->port = d->port;
	e->pad2 = 0;
	__builtin_memcpy(e->addr, d->addr, 16);
}

static __always_inline int deny(const struct deny_info *d)
{
	__u64 seq = __sync_fetch_and_add(&deny_seq, 1) + 1;
	struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

	if (!e) {
		__sync_fetch_and_add(&ringbuf_full, 1);
	} else {
		fill(e, d, seq, 0);
		bpf_ringbuf_submit(e, 0);
	}
	bpf_set_retval(-ECAPABILITY);
	return 0;
}

/* allow lets an allowed call through, first recording it when its policy
 * asks for every connect. A use that cannot be recorded is refused (as a
 * deny, counted in ringbuf_full): nothing happens unrecorded. */
static __always_inline int allow(const struct deny_info *d, __u32 policy)
{
	if (d->op != NG_OP_CONNECT)
		return 1;
	__u32 *flags = bpf_map_lookup_elem(&policy_flags, &policy);
	if (!flags || !(*flags & NG_FLAG_AUDIT_CONNECT))
		return 1;
	struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e)
		return deny(d);
	fill(e, d, __sync_fetch_and_add(&use_seq, 1) + 1, NG_EV_ALLOWED);
	bpf_ringbuf_submit(e, 0);
	return 1;
}

static __always_inline int ports_allow(const struct port_ranges *pr, __u16 port)
{
	__u32 n = pr->n;

	for (__u32 i = 0; i < NG_MAX_RANGES; i++) {
		if (i >= n)
			break;
		if (port >= pr->r[i].lo && port <= pr->r[i].hi)
			return 1;
	}
	return 0;
}

/* check_addr decides one sock_addr hook. is6 is a compile-time constant per
 * program: the verifier refuses user_ip6 reads in the IPv4 hooks. */
static __always_inline int check_addr(struct bpf_sock_addr *ctx, __u8 op, __u8 verb, int is6)
{
	__u64 cgroup = 0;
	__u32 *policy = agent_policy(&cgroup);

	if (!policy)
		return 1;

	struct lpm_key key = {};
	key.policy = *policy;
	key.verb = verb;

	__u32 family = ctx->user_family;
	if (!is6 && family == NG_AF_INET) {
		__u32 ip = ctx->user_ip4;
		key.family = NG_AF_INET;
		key.prefixlen = 64 + 32;
		__builtin_memcpy(key.addr, &ip, 4);
	} else if (is6 && family == NG_AF_INET6) {
		__u32 w0 = ctx->user_ip6[0], w1 = ctx->user_ip6[1];
		__u32 w2 = ctx->user_ip6[2], w3 = ctx->user_ip6[3];
		if (w0 == 0 && w1 == 0 && w2 == bpf_htonl(0xffff)) {
			/* ::ffff:a.b.c.d reaches an IPv4 peer: IPv4 rules decide. */
			key.family = NG_AF_INET;
			key.prefixlen = 64 + 32;
			__builtin_memcpy(key.addr, &w3, 4);
		} else {
			key.family = NG_AF_INET6;
			key.prefixlen = 64 + 128;
			__builtin_memcpy(key.addr, &w0, 4);
			__builtin_memcpy(key.addr + 4, &w1, 4);
			__builtin_memcpy(key.addr + 8, &w2, 4);
			__builtin_memcpy(key.addr + 12, &w3, 4);
		}
	} else {
		/* Not reachable through these hooks; refuse rather than guess. */
		key.family = (__u8)family;
	}

	__u16 port = bpf_ntohs((__u16)ctx->user_port);
	struct deny_info d = {
		.cgroup = cgroup,
		.op = op,
		.verb = verb,
		.family = key.family,
		.type = (__u16)ctx->type,
		.protocol = (__u16)ctx->protocol,
		.port = port,
		.addr = key.addr,
	};
	if (key.prefixlen) {
		struct port_ranges *pr = bpf_map_lookup_elem(&rules, &key);
		if (pr && ports_allow(pr, port))
			return allow(&d, key.policy);
	}
	return deny(&d);
}

SEC("cgroup/connect4")
int connect4(struct bpf_sock_addr *ctx) { return check_addr(ctx, NG_OP_CONNECT, NG_VERB_CONNECT, 0); }

SEC("cgroup/connect6")
int connect6(struct bpf_sock_addr *ctx) { return check_addr(ctx, NG_OP_CONNECT, NG_VERB_CONNECT, 1); }

SEC("cgroup/sendmsg4")
int sendmsg4(struct bpf_sock_addr *ctx) { return check_addr(ctx, NG_OP_SENDMSG, NG_VERB_CONNECT, 0); }

SEC("cgroup/sendmsg6")
int sendmsg6(struct bpf_sock_addr *ctx) { return check_addr(ctx, NG_OP_SENDMSG, NG_VERB_CONNECT, 1); }

SEC("cgroup/bind4")
int bind4(struct bpf_sock_addr *ctx) { return check_addr(ctx, NG_OP_BIND, NG_VERB_BIND, 0); }

SEC("cgroup/bind6")
int bind6(struct bpf_sock_addr *ctx) { return check_addr(ctx, NG_OP_BIND, NG_VERB_BIND, 1); }

SEC("cgroup/sock_create")
int sock_create(struct bpf_sock *sk)
{
	__u64 cgroup = 0;
	__u32 *policy = agent_policy(&cgroup);

	if (!policy)
		return 1;

	__u32 family = sk->family, type = sk->type, protocol = sk->protocol;
	int inet = family == NG_AF_INET || family == NG_AF_INET6;
	int tcp = type == NG_SOCK_STREAM && protocol == NG_IPPROTO_TCP;
	int udp = type == NG_SOCK_DGRAM && protocol == NG_IPPROTO_UDP;
	if (inet && (tcp || udp))
		return 1;

	__u8 zero[16] = {};
	struct deny_info d = {
		.cgroup = cgroup,
		.op = NG_OP_SOCK_CREATE,
		.verb = NG_VERB_CREATE,
		.family = (__u8)family,
		.type = (__u16)type,
		.protocol = (__u16)protocol,
		.port = 0,
		.addr = zero,
	};
	return deny(&d);
}

/* ---- Unix sockets (cgroup/connect_unix, cgroup/sendmsg_unix, kernel >= 6.7)
 *
 * An agent that can connect to any Unix socket can be handed, with
 * SCM_RIGHTS, an open fd of a file it may not read, and nothing checks a
 * read on a received fd. So an agent may connect (or sendto) only the
 * Unix socket addresses its policy lists: exact match on the address text
 * in unix_rules. Non-agent cgroups pass as in the inet hooks.
 *
 * The address is not in the uapi context: the program casts the context to
 * the kernel's struct bpf_sock_addr_kern (bpf_cast_to_kern_ctx) and reads
 * uaddr as a struct sockaddr_un (bpf_rdonly_cast). Those two structs are
 * read through CO-RE relocations against the running kernel's BTF; the
 * definitions below name only the fields used.
 */

extern void *bpf_cast_to_kern_ctx(void *obj) __ksym;
extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym;

struct sockaddr;

struct bpf_sock_addr_kern {
	struct sockaddr *uaddr;
	__u32 uaddrlen;
} __attribute__((preserve_access_index));

struct sockaddr_un {
	__u16 sun_family;
	char sun_path[NG_UNIX_PATH];
} __attribute__((preserve_access_index));

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct unix_key);
	__type(value, __u8); /* unused: presence allows */
} unix_rules SEC(".maps");

const struct unix_event *unused_unix_event __attribute__((unused));

/* Per-CPU scratch: a unix_key (116 bytes) and a copy loop do not both fit
 * comfortably in the 512-byte stack beside the verifier's spills. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct unix_key);
} unix_scratch SEC(".maps");

static __always_inline int deny_unix(__u64 cgroup, __u8 op, const struct unix_key *k)
{
	__u64 seq = __sync_fetch_and_add(&deny_seq, 1) + 1;
	struct unix_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

	if (!e) {
		__sync_fetch_and_add(&ringbuf_full, 1);
	} else {
		__u8 zero[16] = {};
		struct deny_info d = {
			.cgroup = cgroup,
			.op = op,
			.verb = NG_VERB_CONNECT,
			.family = NG_AF_UNIX,
			.type = 0,
			.protocol = 0,
			.port = 0,
			.addr = zero,
		};
		fill(&e->hdr, &d, seq, 0);
		e->len = k->len;
		__builtin_memcpy(e->path, k->path, NG_UNIX_PATH);
		bpf_ringbuf_submit(e, 0);
	}
	bpf_set_retval(-ECAPABILITY);
	return 0;
}

static __always_inline int check_unix(struct bpf_sock_addr *ctx, __u8 op)
{
	__u64 cgroup = 0;
	__u32 *policy = agent_policy(&cgroup);

	if (!policy)
		return 1;

	__u32 zero = 0;
	struct unix_key *k = bpf_map_lookup_elem(&unix_scratch, &zero);
	if (!k)
		return deny_unix(cgroup, op, &(struct unix_key){}); /* never: fail closed */
	__builtin_memset(k, 0, sizeof(*k));
	k->policy = *policy;

	struct bpf_sock_addr_kern *sa = bpf_cast_to_kern_ctx(ctx);
	struct sockaddr_un *un = bpf_rdonly_cast(sa->uaddr, bpf_core_type_id_kernel(struct sockaddr_un));
	__u32 n = sa->uaddrlen;
	/* uaddrlen counts sun_family (2 bytes) before the path. */
	n = n > 2 ? n - 2 : 0;
	if (n > NG_UNIX_PATH)
		n = NG_UNIX_PATH;
	int abstract = n > 0 && un->sun_path[0] == 0;
	/* Unrolled with constant offsets and no early exit: the verifier
	 * allows no variable offset into a kernel struct. sun_path lies inside
	 * the kernel's sockaddr_storage copy, so all 108 bytes are readable;
	 * those past the address length are ignored. */
	__u32 len = 0;
	int stop = 0;
#pragma unroll
	for (int i = 0; i < NG_UNIX_PATH; i++) {
		char c = un->sun_path[i];
		if (i >= n || (!abstract && c == 0))
			stop = 1;
		if (!stop) {
			k->path[i] = c;
			len = i + 1;
		}
	}
	k->len = len;
	if (len && bpf_map_lookup_elem(&unix_rules, k))
		return 1;
	return deny_unix(cgroup, op, k);
}

SEC("cgroup/connect_unix")
int connect_unix(struct bpf_sock_addr *ctx) { return check_unix(ctx, NG_OP_CONNECT); }

SEC("cgroup/sendmsg_unix")
int sendmsg_unix(struct bpf_sock_addr *ctx) { return check_unix(ctx, NG_OP_SENDMSG); }
