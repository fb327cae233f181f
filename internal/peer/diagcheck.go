package peer

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"
)

// TCP states (include/net/tcp_states.h) a client's socket may be in while
// the server holds a request it sent.
const (
	tcpEstablished = unix.BPF_TCP_ESTABLISHED
	tcpFinWait1    = unix.BPF_TCP_FIN_WAIT1
	tcpFinWait2    = unix.BPF_TCP_FIN_WAIT2
)

// liveClientState says whether a socket in state s can be the client end
// of a connection the server has just accepted. The lookup runs once, at
// accept time, before the server has sent anything, so the client's socket
// is ESTABLISHED, or FIN_WAIT1/2 if it half-closed (or closed) after
// writing its request: it is still the socket its creator connected.
// Every other state is refused: LISTEN is the kernel's fallback when no
// connected socket has the tuple (the spoof of review finding #5);
// SYN_SENT/SYN_RECV are before the handshake completed; CLOSE_WAIT,
// CLOSING and LAST_ACK need a FIN from the server, which has not sent one;
// TIME_WAIT and CLOSE sockets no longer belong to a live caller.
func liveClientState(s uint8) bool {
	return s == tcpEstablished || s == tcpFinWait1 || s == tcpFinWait2
}

// checkDiagSocket verifies that msg (an inet_diag_msg) describes the
// socket asked for: a connected state and exactly the 4-tuple local →
// remote. The kernel's "exact" lookup falls back to a listener on the
// local port when no connected socket matches, so its answer alone is not
// proof of the caller.
func checkDiagSocket(msg []byte, local, remote netip.AddrPort) error {
	if len(msg) < diagMsgLen {
		return fmt.Errorf("%w: sock_diag: short reply (%d bytes)", ErrNoSocket, len(msg))
	}
	family, state := msg[0], msg[1]
	if !liveClientState(state) {
		return fmt.Errorf("%w: sock_diag: socket in TCP state %d is not a connected client", ErrNoSocket, state)
	}
	src, sok := diagAddr(family, msg[8:24])
	dst, dok := diagAddr(family, msg[24:40])
	if !sok || !dok {
		return fmt.Errorf("%w: sock_diag: reply of address family %d", ErrNoSocket, family)
	}
	gotLocal := netip.AddrPortFrom(src, binary.BigEndian.Uint16(msg[4:6]))
	gotRemote := netip.AddrPortFrom(dst, binary.BigEndian.Uint16(msg[6:8]))
	if gotLocal != unmapPort(local) || gotRemote != unmapPort(remote) {
		return fmt.Errorf("%w: sock_diag: asked for %s -> %s, kernel answered %s -> %s", ErrNoSocket, local, remote, gotLocal, gotRemote)
	}
	return nil
}

// diagAddr reads an inet_diag_sockid address of the reply's family. An
// AF_INET6 socket connected over IPv4 reports v4-mapped addresses, so
// the result is unmapped to compare with the (unmapped) request.
func diagAddr(family uint8, b []byte) (netip.Addr, bool) {
	switch family {
	case unix.AF_INET:
		return netip.AddrFrom4([4]byte(b[:4])), true
	case unix.AF_INET6:
		return netip.AddrFrom16([16]byte(b[:16])).Unmap(), true
	}
	return netip.Addr{}, false
}

func unmapPort(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}
