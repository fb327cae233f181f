package netguard

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// Op is the hook that denied.
type Op uint8

// Hooks, as numbered in bpf/include/netguard.h.
const (
	OpConnect    Op = 0 // connect(2): TCP, UDP or a Unix socket
	OpSendmsg    Op = 1 // sendto/sendmsg with an address (UDP, Unix datagram)
	OpBind       Op = 2 // bind(2)
	OpSockCreate Op = 3 // socket(2) of a kind agents may not have
)

func (o Op) String() string {
	switch o {
	case OpConnect:
		return "connect"
	case OpSendmsg:
		return "sendmsg"
	case OpBind:
		return "bind"
	case OpSockCreate:
		return "sock_create"
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// Event is one kernel deny, or (Allowed) one allowed connect of a policy
// that records them (SetAuditConnect).
type Event struct {
	// Seq is the kernel sequence number, from 1: of denies, or, for
	// allowed uses, of allowed uses (a sequence of its own).
	Seq      uint64
	Allowed  bool
	CgroupID uint64 // the bound (agent) cgroup
	PID      uint32 // thread group id of the caller
	Op       Op
	// Verb is the capability verb checked: "connect" (net.connect), "bind"
	// (net.bind), or "create" for a refused socket type.
	Verb     string
	Family   uint8  // AF_UNIX (1), AF_INET (2) or AF_INET6 (10); for OpSockCreate, the socket's
	Type     uint16 // SOCK_STREAM, SOCK_DGRAM, SOCK_RAW...
	Protocol uint16 // IPPROTO_*
	// Addr and Port are the peer (connect, sendmsg) or local address
	// (bind); IPv4-mapped peers are reported as IPv4. Invalid and 0 for
	// OpSockCreate.
	Addr netip.Addr
	Port uint16
	// Unix is the Unix socket address of a denied connect or sendto
	// (Family 1): a pathname, or a NUL byte and an abstract name. Empty
	// for every other event; UnixName prints it.
	Unix string
	// Replayed: the event was in the ring when this guard reopened the
	// pins, so the daemon that died may have recorded it already (it
	// had not acknowledged it: see Guard.Ack).
	Replayed bool

	end uintptr // the record's end in the ring, for Ack
}

// UnixName is the event's Unix socket address as capabilities write it,
// "/path" or "@name", with unprintable bytes escaped; "" when the event
// is not about a Unix socket.
func (e Event) UnixName() string {
	if e.Family != afUnix {
		return ""
	}
	return unixName(e.Unix)
}

// eventSize is sizeof(struct event); unixEventSize sizeof(struct
// unix_event), the same header followed by the address length and bytes.
const (
	eventSize     = 48
	unixEventSize = eventSize + 4 + unixPathLen
)

// decodeEvent parses one ring buffer record. Anything the program could not
// have written is refused rather than half-decoded.
func decodeEvent(b []byte) (Event, error) {
	switch len(b) {
	case eventSize:
	case unixEventSize:
		return decodeUnixEvent(b)
	default:
		return Event{}, fmt.Errorf("%d bytes, want %d or %d: %w", len(b), eventSize, unixEventSize, ErrMalformedEvent)
	}
	le := binary.LittleEndian // bpfel object; native order on every arch it builds for
	e := Event{
		Seq:      le.Uint64(b[0:]),
		CgroupID: le.Uint64(b[8:]),
		PID:      le.Uint32(b[16:]),
		Op:       Op(b[20]),
		Family:   b[22],
		Type:     le.Uint16(b[24:]),
		Protocol: le.Uint16(b[26:]),
		Port:     le.Uint16(b[28:]),
	}
	verb, flags, pad2 := b[21], b[23], le.Uint16(b[30:])
	if e.Seq == 0 {
		return Event{}, fmt.Errorf("sequence 0: %w", ErrMalformedEvent)
	}
	if pad2 != 0 {
		return Event{}, fmt.Errorf("padding not zero: %w", ErrMalformedEvent)
	}
	switch flags {
	case 0:
	case evAllowed:
		if e.Op != OpConnect {
			return Event{}, fmt.Errorf("allowed %v: only connects are recorded: %w", e.Op, ErrMalformedEvent)
		}
		e.Allowed = true
	default:
		return Event{}, fmt.Errorf("flags %#x: %w", flags, ErrMalformedEvent)
	}
	var want uint8
	switch e.Op {
	case OpConnect, OpSendmsg:
		want = verbConnect
	case OpBind:
		want = verbBind
	case OpSockCreate:
		want = verbCreate
	default:
		return Event{}, fmt.Errorf("unknown op %d: %w", b[20], ErrMalformedEvent)
	}
	if verb != want {
		return Event{}, fmt.Errorf("verb %d for %v: %w", verb, e.Op, ErrMalformedEvent)
	}
	e.Verb = verbName(verb)
	addr := b[32:48]
	if e.Op == OpSockCreate {
		if e.Port != 0 || !allZero(addr) {
			return Event{}, fmt.Errorf("sock_create with an address: %w", ErrMalformedEvent)
		}
		return e, nil
	}
	switch e.Family {
	case afUnix:
		return Event{}, fmt.Errorf("unix family in an inet event: %w", ErrMalformedEvent)
	case afInet:
		if !allZero(addr[4:]) {
			return Event{}, fmt.Errorf("IPv4 address with trailing bytes: %w", ErrMalformedEvent)
		}
		e.Addr = netip.AddrFrom4([4]byte(addr[:4]))
	case afInet6:
		e.Addr = netip.AddrFrom16([16]byte(addr))
	default:
		return Event{}, fmt.Errorf("family %d for %v: %w", e.Family, e.Op, ErrMalformedEvent)
	}
	return e, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// decodeUnixEvent parses a struct unix_event: a deny of connect or sendto
// on a Unix socket, whose header has no address or port.
func decodeUnixEvent(b []byte) (Event, error) {
	hdr := make([]byte, eventSize)
	copy(hdr, b[:eventSize])
	if hdr[22] != afUnix {
		return Event{}, fmt.Errorf("unix event of family %d: %w", hdr[22], ErrMalformedEvent)
	}
	// Decode the header as an inet event would be, to share its checks,
	// with a family it accepts; then restore the real one.
	hdr[22] = afInet
	e, err := decodeEvent(hdr)
	if err != nil {
		return Event{}, err
	}
	switch {
	case e.Allowed:
		return Event{}, fmt.Errorf("allowed unix connect: only denies are recorded: %w", ErrMalformedEvent)
	case e.Op != OpConnect && e.Op != OpSendmsg:
		return Event{}, fmt.Errorf("unix event for %v: %w", e.Op, ErrMalformedEvent)
	case e.Port != 0 || !allZero(b[32:48]):
		return Event{}, fmt.Errorf("unix event with an inet address: %w", ErrMalformedEvent)
	}
	n := binary.LittleEndian.Uint32(b[eventSize:])
	path := b[eventSize+4:]
	if n > unixPathLen || !allZero(path[n:]) {
		return Event{}, fmt.Errorf("unix address of %d bytes: %w", n, ErrMalformedEvent)
	}
	e.Family, e.Addr, e.Unix = afUnix, netip.Addr{}, string(path[:n])
	return e, nil
}
