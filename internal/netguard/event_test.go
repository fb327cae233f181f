package netguard

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
)

func rawEvent(seq uint64, op, verb, family uint8, port uint16, addr []byte) []byte {
	b := make([]byte, eventSize)
	binary.LittleEndian.PutUint64(b[0:], seq)
	binary.LittleEndian.PutUint64(b[8:], 42)
	binary.LittleEndian.PutUint32(b[16:], 1000)
	b[20], b[21], b[22] = op, verb, family
	binary.LittleEndian.PutUint16(b[24:], 1)
	binary.LittleEndian.PutUint16(b[26:], 6)
	binary.LittleEndian.PutUint16(b[28:], port)
	copy(b[32:], addr)
	return b
}

func withFlags(b []byte, flags uint8) []byte {
	b[23] = flags
	return b
}

func TestDecodeEvent(t *testing.T) {
	v6 := netip.MustParseAddr("2001:db8::1").As16()
	tests := []struct {
		name string
		in   []byte
		want Event
		err  error
	}{
		{"connect4", rawEvent(1, 0, 0, 2, 443, []byte{10, 0, 0, 1}),
			Event{Seq: 1, CgroupID: 42, PID: 1000, Op: OpConnect, Verb: "connect", Family: 2, Type: 1, Protocol: 6,
				Addr: netip.MustParseAddr("10.0.0.1"), Port: 443}, nil},
		{"bind6", rawEvent(2, 2, 1, 10, 80, v6[:]),
			Event{Seq: 2, CgroupID: 42, PID: 1000, Op: OpBind, Verb: "bind", Family: 10, Type: 1, Protocol: 6,
				Addr: netip.AddrFrom16(v6), Port: 80}, nil},
		{"sock_create", rawEvent(3, 3, 2, 2, 0, nil),
			Event{Seq: 3, CgroupID: 42, PID: 1000, Op: OpSockCreate, Verb: "create", Family: 2, Type: 1, Protocol: 6}, nil},
		{"short", make([]byte, eventSize-1), Event{}, ErrMalformedEvent},
		{"seq zero", rawEvent(0, 0, 0, 2, 1, nil), Event{}, ErrMalformedEvent},
		{"unknown op", rawEvent(1, 9, 0, 2, 1, nil), Event{}, ErrMalformedEvent},
		{"verb mismatch", rawEvent(1, 2, 0, 2, 1, nil), Event{}, ErrMalformedEvent},
		{"bad family", rawEvent(1, 0, 0, 7, 1, nil), Event{}, ErrMalformedEvent},
		{"v4 trailing bytes", rawEvent(1, 0, 0, 2, 1, []byte{1, 2, 3, 4, 5}), Event{}, ErrMalformedEvent},
		{"sock_create with port", rawEvent(1, 3, 2, 2, 9, nil), Event{}, ErrMalformedEvent},
		{"allowed connect", withFlags(rawEvent(4, 0, 0, 2, 443, []byte{10, 0, 0, 1}), evAllowed),
			Event{Seq: 4, Allowed: true, CgroupID: 42, PID: 1000, Op: OpConnect, Verb: "connect", Family: 2, Type: 1, Protocol: 6,
				Addr: netip.MustParseAddr("10.0.0.1"), Port: 443}, nil},
		{"allowed bind", withFlags(rawEvent(4, 2, 1, 2, 80, []byte{10, 0, 0, 1}), evAllowed), Event{}, ErrMalformedEvent},
		{"unknown flag", withFlags(rawEvent(4, 0, 0, 2, 80, []byte{10, 0, 0, 1}), 2), Event{}, ErrMalformedEvent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeEvent(tt.in)
			if !errors.Is(err, tt.err) {
				t.Fatalf("decodeEvent: %v, want %v", err, tt.err)
			}
			if got != tt.want {
				t.Errorf("decodeEvent = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func FuzzDecodeEvent(f *testing.F) {
	f.Add(rawEvent(1, 0, 0, 2, 443, []byte{10, 0, 0, 1}))
	f.Add(rawEvent(7, 1, 0, 10, 53, []byte{0x20, 1, 0xd, 0xb8}))
	f.Add(rawEvent(3, 3, 2, 2, 0, nil))
	f.Add(withFlags(rawEvent(4, 0, 0, 2, 443, []byte{10, 0, 0, 1}), evAllowed))
	f.Add(rawUnixEvent(5, 0, "/run/app.sock"))
	f.Add(rawUnixEvent(6, 1, "\x00abstract\x00name"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeEvent(b)
		if err != nil {
			if !errors.Is(err, ErrMalformedEvent) {
				t.Fatalf("error %v does not wrap ErrMalformedEvent", err)
			}
			return
		}
		unixEv := len(b) == unixEventSize
		if e.Seq == 0 || (e.Op != OpSockCreate && !unixEv && !e.Addr.IsValid()) ||
			(unixEv && (e.Family != afUnix || e.Addr.IsValid())) || (!unixEv && e.Unix != "") {
			t.Fatalf("accepted %+v", e)
		}
	})
}
