// Package netguard enforces net.connect and net.bind capabilities in the
// kernel with cgroup BPF programs (coconut's portable backend), Unix
// socket addresses included.
//
// Nine programs (cgroup/connect4, connect6, sendmsg4, sendmsg6, bind4,
// bind6, sock_create, connect_unix, sendmsg_unix; C in bpf/netguard.c)
// attach to coconut's cgroup
// subtree root. Each maps the calling task's cgroup id to a policy id (the
// agents map); a task whose cgroup is not bound passes untouched, so only
// agents pay for a rule lookup. Agents of one manifest class share a policy:
// 31 agents cost 31 map entries of 12 bytes, not 31 copies of the rules.
//
// # Rules
//
// A policy's rules live in one LPM trie keyed {policy, verb, family,
// address}. IPv4 and IPv6 are separate partitions of the same trie (the
// family byte is part of the always-matched key prefix) rather than IPv4
// stored IPv4-mapped: a v4 rule then costs a 32-bit prefix, and the program
// unmaps ::ffff:a.b.c.d peers so IPv4 rules alone decide them, as
// capability.MatchAddr does. Host "*" becomes 0.0.0.0/0 and ::/0.
//
// An entry's value lists allowed port ranges. SetPolicy folds the ranges of
// every less specific prefix into each more specific one (and merges them),
// so the longest match alone answers; a match whose ranges miss the port is
// a deny even if a shorter prefix would have allowed it, which cannot happen
// after folding. Folding also makes policy updates safe in any order: every
// entry's ranges are a subset of what its own policy (old or new) allows
// for every address under it, so a lookup during an update never allows
// what neither the old nor the new policy allows. Once SetPolicy returns,
// every later call sees only the new entries (revocation is effective for
// the next call; calls already past the hook are not undone).
//
// Port 0 is never allowed: bind(addr, 0) asks the kernel for a port, which
// is a server socket the policy did not name. Binding 0.0.0.0 or :: needs a
// rule covering that address ("*" or a /0), not one for a single address.
//
// # Unix sockets
//
// connect_unix and sendmsg_unix (Linux >= 6.7) let an agent reach only the
// Unix sockets its policy lists (net.connect:unix:/path or unix:@name): a
// process behind any other socket could pass it an fd (SCM_RIGHTS) of a
// file it may not read, and reads on received fds are checked by nothing.
// The address is matched exactly, in a hash map keyed {policy, length,
// sun_path}: a pathname up to its first NUL, an abstract name with its
// leading NUL and exact length. Denies are events with Family 1 (AF_UNIX)
// and the address in Event.Unix. A kernel without these hooks fails Load
// with ErrUnixHooks, unless the caller asks for the inet programs alone
// (LoadOptions, OpenOptions with Options.AllowNoUnixHooks) and checks Unix
// addresses itself: Guard.UnixHooks says which it got.
//
// # Limits the lead/enforcer must know
//
//   - A connected UDP socket's send() carries no address and runs no hook:
//     a revoke does not stop datagrams on a socket connected before it.
//     Established TCP connections also survive a revoke.
//   - Unbind makes a cgroup pass untouched; bind the cgroup before its first
//     process starts and unbind only after it is empty. To deny everything,
//     bind to a policy with no net capabilities.
//   - The programs detach when the Guard is closed or its process dies.
//   - sock_create sees only AF_INET/AF_INET6: packet and netlink sockets
//     need the seccomp filter.
//
// # Errors from Load
//
// A nil error means all nine programs are loaded and attached: the guard is
// enforcing. Any error means nothing stays attached. errors.Is(err,
// ErrNotCgroup2) says the path is not a cgroup2 directory; ErrLoad says the
// kernel refused a program or map (verifier, permission, missing program
// type: the message carries the verifier log); ErrAttach says a program
// loaded but could not be attached or was not found attached afterwards;
// either also wraps ErrUnixHooks when the Unix socket programs were the
// ones refused (a kernel before 6.7).
// Callers must treat every error as "no network enforcement" and refuse to
// run agents that need it.
//
// # Events and counters
//
// Every deny takes the next number of a kernel-side sequence (so the last
// number is the deny count) and writes an Event to an 8 MiB ring buffer; a
// failed reservation increments ringbuf_full instead. Hence
// denies == events delivered + ringbuf_full + Malformed(), and sequence gaps
// are exactly the lost events. Events blocks when its reader does not keep
// up; the ring then fills and the loss is counted, never hidden.
package netguard
