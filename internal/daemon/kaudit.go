package daemon

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// errAuditReply: the kernel's answer to AUDIT_GET did not parse.
var errAuditReply = errors.New("malformed audit netlink reply")

const (
	auditGet    = 1000 // AUDIT_GET
	nlmsgHdrLen = 16
)

// kernelAuditEnabled asks the kernel audit subsystem whether it is enabled
// (AUDIT_GET over NETLINK_AUDIT; needs CAP_AUDIT_CONTROL). Landlock logs
// its denials only through it.
func kernelAuditEnabled() (bool, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_AUDIT)
	if err != nil {
		return false, fmt.Errorf("netlink audit socket: %w", err)
	}
	defer unix.Close(fd)
	tv := unix.NsecToTimeval(int64(2 * time.Second))
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	req := make([]byte, nlmsgHdrLen)
	binary.NativeEndian.PutUint32(req[0:], nlmsgHdrLen)
	binary.NativeEndian.PutUint16(req[4:], auditGet)
	binary.NativeEndian.PutUint16(req[6:], unix.NLM_F_REQUEST|unix.NLM_F_ACK)
	binary.NativeEndian.PutUint32(req[8:], 1)
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return false, fmt.Errorf("AUDIT_GET: %w", err)
	}
	buf := make([]byte, 8192)
	for i := 0; i < 4; i++ { // the ack and the status may come in either order
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return false, fmt.Errorf("AUDIT_GET reply: %w", err)
		}
		enabled, found, err := parseAuditStatus(buf[:n])
		if err != nil {
			return false, err
		}
		if found {
			return enabled, nil
		}
	}
	return false, fmt.Errorf("AUDIT_GET: %w: no status", errAuditReply)
}

// parseAuditStatus walks the netlink messages of one datagram. found is
// true when an AUDIT_GET status was in it; an error message from the
// kernel (other than the ack) is returned as its errno. Lengths are
// checked by hand: audit replies are not always padded as
// syscall.ParseNetlinkMessage expects.
func parseAuditStatus(b []byte) (enabled, found bool, err error) {
	for len(b) > 0 {
		if len(b) < nlmsgHdrLen {
			return false, false, fmt.Errorf("%w: %d bytes left, header is %d", errAuditReply, len(b), nlmsgHdrLen)
		}
		l := int(binary.NativeEndian.Uint32(b[0:]))
		typ := binary.NativeEndian.Uint16(b[4:])
		if l < nlmsgHdrLen || l > len(b) {
			return false, false, fmt.Errorf("%w: message length %d of %d bytes", errAuditReply, l, len(b))
		}
		payload := b[nlmsgHdrLen:l]
		switch typ {
		case unix.NLMSG_ERROR:
			if len(payload) < 4 {
				return false, false, fmt.Errorf("%w: short error message", errAuditReply)
			}
			if code := int32(binary.NativeEndian.Uint32(payload)); code != 0 {
				return false, false, fmt.Errorf("AUDIT_GET: %w", unix.Errno(-code))
			}
		case auditGet:
			// struct audit_status: mask, enabled, ...
			if len(payload) < 8 {
				return false, false, fmt.Errorf("%w: status of %d bytes", errAuditReply, len(payload))
			}
			enabled, found = binary.NativeEndian.Uint32(payload[4:]) != 0, true
		}
		next := (l + 3) &^ 3
		if next > len(b) {
			break
		}
		b = b[next:]
	}
	return enabled, found, nil
}
