// Package peer tells who is on the other end of a local connection, from
// what the kernel says rather than what the caller claims. The API server
// and the inference broker share it, so there is one answer to "which
// agent is calling".
//
// On a Unix socket the kernel gives SO_PEERCRED (uid, pid) and, since
// Linux 6.5, a pidfd that pins the process while its cgroup is read; the
// cgroup names the agent. On TCP the kernel gives nothing about the peer
// process, so the client's own socket is looked up with sock_diag and its
// cgroup id (INET_DIAG_CGROUP_ID, Linux 5.7: the cgroup of the process that
// created the socket) names the agent; a bearer key then must belong to
// that same agent.
//
// Errors: ErrNoCred, ErrGone and ErrNoSocket mean the caller could not be
// identified and must be refused; ErrNotAgent means it was identified and
// is a host process, not an agent.
package peer
