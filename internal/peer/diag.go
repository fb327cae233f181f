package peer

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// sock_diag constants x/sys/unix does not carry (linux/inet_diag.h).
const (
	inetDiagCgroupID = 21 // INET_DIAG_CGROUP_ID, Linux 5.7
	reqV2Len         = 56 // sizeof(struct inet_diag_req_v2)
	diagMsgLen       = 72 // sizeof(struct inet_diag_msg)
	noCookie         = ^uint32(0)
)

var diagSeq atomic.Uint32

// SocketCgroup returns the cgroup v2 id of the process that created the
// TCP socket whose own address is local and whose peer is remote: on a
// server that accepted a loopback connection, pass the client's address as
// local and the server's as remote to learn which cgroup the client runs
// in. The kernel answers from its socket tables (an exact lookup, not a
// dump), so the answer cannot be forged by the client.
func SocketCgroup(local, remote netip.AddrPort) (uint64, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return 0, fmt.Errorf("%w: sock_diag socket: %v", ErrNoSocket, err)
	}
	defer unix.Close(fd)
	tv := unix.Timeval{Sec: 1}
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	seq := diagSeq.Add(1)
	req, err := encodeDiagRequest(local, remote, seq)
	if err != nil {
		return 0, err
	}
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return 0, fmt.Errorf("%w: sock_diag send: %v", ErrNoSocket, err)
	}
	buf := make([]byte, 8192)
	n, _, err := unix.Recvfrom(fd, buf, 0)
	if err != nil {
		return 0, fmt.Errorf("%w: sock_diag receive: %v", ErrNoSocket, err)
	}
	return decodeDiagReply(buf[:n], seq, local, remote)
}

// encodeDiagRequest builds one SOCK_DIAG_BY_FAMILY request (an exact
// lookup by the 4-tuple) in the kernel's byte order: ports and addresses
// big-endian, the rest native.
func encodeDiagRequest(local, remote netip.AddrPort, seq uint32) ([]byte, error) {
	la, ra := local.Addr().Unmap(), remote.Addr().Unmap()
	family := uint8(unix.AF_INET)
	if la.Is6() || ra.Is6() {
		if !la.Is6() || !ra.Is6() {
			return nil, fmt.Errorf("%w: mixed address families %s and %s", ErrNoSocket, local, remote)
		}
		family = unix.AF_INET6
	}
	b := make([]byte, unix.NLMSG_HDRLEN+reqV2Len)
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], uint32(len(b)))
	ne.PutUint16(b[4:], unix.SOCK_DIAG_BY_FAMILY)
	ne.PutUint16(b[6:], unix.NLM_F_REQUEST)
	ne.PutUint32(b[8:], seq)
	r := b[unix.NLMSG_HDRLEN:]
	r[0], r[1] = family, unix.IPPROTO_TCP
	ne.PutUint32(r[4:], ^uint32(0)) // every state
	id := r[8:]
	binary.BigEndian.PutUint16(id[0:], local.Port())
	binary.BigEndian.PutUint16(id[2:], remote.Port())
	putAddr(id[4:20], la)
	putAddr(id[20:36], ra)
	ne.PutUint32(id[40:], noCookie)
	ne.PutUint32(id[44:], noCookie)
	return b, nil
}

func putAddr(dst []byte, a netip.Addr) {
	if a.Is4() {
		v := a.As4()
		copy(dst, v[:])
		return
	}
	v := a.As16()
	copy(dst, v[:])
}

// decodeDiagReply reads the kernel's answer to request seq for the socket
// local -> remote: that socket's INET_DIAG_CGROUP_ID, or the error it
// sent. A reply about any other socket (a listener, another tuple) is
// refused. Malformed input is an error, never a panic.
func decodeDiagReply(b []byte, seq uint32, local, remote netip.AddrPort) (uint64, error) {
	ne := binary.NativeEndian
	for len(b) >= unix.NLMSG_HDRLEN {
		l := ne.Uint32(b[0:])
		typ := ne.Uint16(b[4:])
		mseq := ne.Uint32(b[8:])
		if l < unix.NLMSG_HDRLEN || uint64(l) > uint64(len(b)) {
			return 0, fmt.Errorf("%w: sock_diag: message length %d of %d bytes", ErrNoSocket, l, len(b))
		}
		msg := b[unix.NLMSG_HDRLEN:l]
		next := min(nlAlign(int(l)), len(b))
		b = b[next:]
		if mseq != seq {
			continue
		}
		switch typ {
		case unix.NLMSG_ERROR:
			if len(msg) < 4 {
				return 0, fmt.Errorf("%w: sock_diag: short error message", ErrNoSocket)
			}
			errno := -int32(ne.Uint32(msg))
			if errno == 0 {
				continue // an acknowledgement
			}
			return 0, fmt.Errorf("%w: sock_diag: %v", ErrNoSocket, unix.Errno(errno))
		case unix.NLMSG_DONE:
			return 0, fmt.Errorf("%w: sock_diag: no such socket", ErrNoSocket)
		case unix.SOCK_DIAG_BY_FAMILY:
			if err := checkDiagSocket(msg, local, remote); err != nil {
				return 0, err
			}
			return cgroupAttr(msg[diagMsgLen:])
		}
	}
	return 0, fmt.Errorf("%w: sock_diag: no reply to request %d", ErrNoSocket, seq)
}

// cgroupAttr finds INET_DIAG_CGROUP_ID among the reply's attributes.
func cgroupAttr(b []byte) (uint64, error) {
	ne := binary.NativeEndian
	for len(b) >= 4 {
		l := int(ne.Uint16(b[0:]))
		typ := ne.Uint16(b[2:]) & 0x3fff // without NLA_F_NESTED / NET_BYTEORDER
		if l < 4 || l > len(b) {
			return 0, fmt.Errorf("%w: sock_diag: attribute length %d of %d bytes", ErrNoSocket, l, len(b))
		}
		if typ == inetDiagCgroupID {
			if l != 12 {
				return 0, fmt.Errorf("%w: sock_diag: cgroup id attribute of %d bytes", ErrNoSocket, l)
			}
			return ne.Uint64(b[4:12]), nil
		}
		b = b[min(nlAlign(l), len(b)):]
	}
	return 0, fmt.Errorf("%w: the kernel did not report the socket's cgroup (INET_DIAG_CGROUP_ID needs Linux 5.7)", ErrNoSocket)
}

func nlAlign(n int) int { return (n + 3) &^ 3 }
