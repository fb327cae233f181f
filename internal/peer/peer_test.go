package peer

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coconut-os/coconut/internal/cgroup"
	"golang.org/x/sys/unix"
)

func TestParseBearer(t *testing.T) {
	key, hash, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	if HashKey(key) != hash || len(hash) != 64 {
		t.Fatalf("hash %q does not match key", hash)
	}
	tests := []struct {
		name, header string
		ok           bool
	}{
		{"bearer", "Bearer " + key, true},
		{"lower-case scheme", "bearer " + key, true},
		{"empty", "", false},
		{"basic", "Basic " + key, false},
		{"no scheme", key, false},
		{"other prefix", "Bearer sk-" + key[len(KeyPrefix):], false},
		{"short", "Bearer " + key[:len(key)-1], false},
		{"long", "Bearer " + key + "A", false},
		{"not base64url", "Bearer " + key[:len(key)-1] + "+", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseBearer(tt.header)
			if tt.ok != (err == nil) {
				t.Fatalf("ParseBearer(%q) = %q, %v; want ok=%v", tt.header, got, err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrBadKey) {
				t.Fatalf("error %v is not ErrBadKey", err)
			}
			if err == nil && got != key {
				t.Fatalf("got key %q, want %q", got, key)
			}
		})
	}
}

func TestNewKeyUnique(t *testing.T) {
	a, _, _ := NewKey()
	b, _, _ := NewKey()
	if a == b || !strings.HasPrefix(a, KeyPrefix) {
		t.Fatalf("keys %q and %q", a, b)
	}
}

var (
	diagLocal  = netip.MustParseAddrPort("127.0.0.1:4000")
	diagRemote = netip.MustParseAddrPort("127.0.0.1:7878")
)

// diagSock is the socket an inet_diag_msg describes.
type diagSock struct {
	family, state uint8
	src, dst      netip.AddrPort
}

// diagReply builds one SOCK_DIAG_BY_FAMILY message as the kernel sends it.
func diagReply(seq uint32, s diagSock, attrs ...[]byte) []byte {
	body := make([]byte, diagMsgLen)
	body[0], body[1] = s.family, s.state
	binary.BigEndian.PutUint16(body[4:], s.src.Port())
	binary.BigEndian.PutUint16(body[6:], s.dst.Port())
	putAddr(body[8:24], s.src.Addr())
	putAddr(body[24:40], s.dst.Addr())
	for _, a := range attrs {
		body = append(body, a...)
	}
	b := make([]byte, 16, 16+len(body))
	nativePut32(b[0:], uint32(16+len(body)))
	nativePut16(b[4:], 20) // SOCK_DIAG_BY_FAMILY
	nativePut32(b[8:], seq)
	return append(b, body...)
}

func diagAttr(typ uint16, v []byte) []byte {
	a := make([]byte, 4, 4+len(v))
	nativePut16(a[0:], uint16(4+len(v)))
	nativePut16(a[2:], typ)
	a = append(a, v...)
	for len(a)%4 != 0 {
		a = append(a, 0)
	}
	return a
}

func cgroupIDAttr(id uint64) []byte {
	v := make([]byte, 8)
	nativePut64(v, id)
	return diagAttr(inetDiagCgroupID, v)
}

func TestDecodeDiagReply(t *testing.T) {
	req, err := encodeDiagRequest(diagLocal, diagRemote, 9)
	if err != nil {
		t.Fatal(err)
	}
	ap := netip.MustParseAddrPort
	est := diagSock{unix.AF_INET, tcpEstablished, diagLocal, diagRemote}
	with := func(f func(*diagSock)) diagSock { s := est; f(&s); return s }
	id := cgroupIDAttr(4242)
	tests := []struct {
		name string
		in   []byte
		want uint64
		ok   bool
	}{
		{"cgroup id", diagReply(9, est, diagAttr(1, []byte{1, 2, 3}), id), 4242, true},
		{"half-closed client", diagReply(9, with(func(s *diagSock) { s.state = tcpFinWait2 }), id), 4242, true},
		{"v4-mapped on an AF_INET6 socket", diagReply(9, with(func(s *diagSock) {
			s.family = unix.AF_INET6
			s.src, s.dst = ap("[::ffff:127.0.0.1]:4000"), ap("[::ffff:127.0.0.1]:7878")
		}), id), 4242, true},
		{"listener", diagReply(9, with(func(s *diagSock) {
			s.state = unix.BPF_TCP_LISTEN
			s.src, s.dst = ap("0.0.0.0:4000"), ap("0.0.0.0:0")
		}), id), 0, false},
		{"listener with the asked tuple", diagReply(9, with(func(s *diagSock) { s.state = unix.BPF_TCP_LISTEN }), id), 0, false},
		{"close wait", diagReply(9, with(func(s *diagSock) { s.state = unix.BPF_TCP_CLOSE_WAIT }), id), 0, false},
		{"syn recv", diagReply(9, with(func(s *diagSock) { s.state = unix.BPF_TCP_SYN_RECV }), id), 0, false},
		{"state zero", diagReply(9, with(func(s *diagSock) { s.state = 0 }), id), 0, false},
		{"other source address", diagReply(9, with(func(s *diagSock) { s.src = ap("127.0.0.5:4000") }), id), 0, false},
		{"other source port", diagReply(9, with(func(s *diagSock) { s.src = ap("127.0.0.1:4001") }), id), 0, false},
		{"other destination address", diagReply(9, with(func(s *diagSock) { s.dst = ap("127.0.0.2:7878") }), id), 0, false},
		{"other destination port", diagReply(9, with(func(s *diagSock) { s.dst = ap("127.0.0.1:7879") }), id), 0, false},
		{"swapped tuple", diagReply(9, with(func(s *diagSock) { s.src, s.dst = s.dst, s.src }), id), 0, false},
		{"unknown family", diagReply(9, with(func(s *diagSock) { s.family = unix.AF_UNIX }), id), 0, false},
		{"no attribute", diagReply(9, est, diagAttr(1, []byte{1})), 0, false},
		{"other sequence", diagReply(8, est, id), 0, false},
		{"truncated", diagReply(9, est, id)[:40], 0, false},
		{"empty", nil, 0, false},
		{"the request itself", req, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeDiagReply(tt.in, 9, diagLocal, diagRemote)
			if tt.ok != (err == nil) || got != tt.want {
				t.Fatalf("got %d, %v; want %d ok=%v", got, err, tt.want, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrNoSocket) {
				t.Fatalf("error %v is not ErrNoSocket", err)
			}
		})
	}
}

func FuzzDecodeDiagReply(f *testing.F) {
	local, remote := netip.MustParseAddrPort("[::1]:4000"), netip.MustParseAddrPort("[::1]:7878")
	req, _ := encodeDiagRequest(local, remote, 1)
	f.Add(req)
	f.Add([]byte{})
	f.Add(make([]byte, 16+diagMsgLen+12))
	f.Add(diagReply(1, diagSock{unix.AF_INET6, tcpEstablished, local, remote}, cgroupIDAttr(7)))
	f.Add(diagReply(1, diagSock{unix.AF_INET6, unix.BPF_TCP_LISTEN, local, remote}, cgroupIDAttr(7)))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := decodeDiagReply(b, 1, local, remote)
		if err != nil && !errors.Is(err, ErrNoSocket) {
			t.Fatalf("error %v is not ErrNoSocket", err)
		}
	})
}

func FuzzParseBearer(f *testing.F) {
	key, _, _ := NewKey()
	f.Add("Bearer " + key)
	f.Add("Bearer coco-")
	f.Add("")
	f.Fuzz(func(t *testing.T, h string) {
		if k, err := ParseBearer(h); err == nil && !strings.HasPrefix(k, KeyPrefix) {
			t.Fatalf("accepted %q", k)
		}
	})
}

// ownCgroupID is the cgroup v2 id of this test process.
func ownCgroupID(t *testing.T) uint64 {
	t.Helper()
	mount, err := cgroup.UnifiedMount()
	if err != nil {
		t.Skipf("no cgroup2 hierarchy: %v", err)
	}
	rel, err := cgroup.ProcPath(0)
	if err != nil {
		t.Fatal(err)
	}
	id, err := cgroup.ID(filepath.Join(mount, rel))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestSocketCgroup(t *testing.T) {
	want := ownCgroupID(t)
	for _, network := range []string{"tcp4", "tcp6"} {
		t.Run(network, func(t *testing.T) {
			addr := "127.0.0.1:0"
			if network == "tcp6" {
				addr = "[::1]:0"
			}
			l, err := net.Listen(network, addr)
			if err != nil {
				t.Skipf("no %s loopback: %v", network, err)
			}
			defer l.Close()
			accepted := make(chan net.Conn, 1)
			go func() { c, _ := l.Accept(); accepted <- c }()
			c, err := net.Dial(network, l.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			s := <-accepted
			defer s.Close()
			ctx := TCPConnContext(context.Background(), s)
			got, err := TCPCgroup(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Fatalf("client socket cgroup %d, want ours %d", got, want)
			}
			// The server's own socket has the reverse tuple: looking up
			// a tuple no socket has must fail, not return a listener.
			_, err = SocketCgroup(netip.MustParseAddrPort(c.LocalAddr().String()), netip.AddrPortFrom(netip.MustParseAddrPort(l.Addr().String()).Addr(), 1))
			if !errors.Is(err, ErrNoSocket) {
				t.Fatalf("lookup of a missing socket: %v, want ErrNoSocket", err)
			}
		})
	}
}

func TestUnixCred(t *testing.T) {
	dir := t.TempDir()
	l, err := net.Listen("unix", filepath.Join(dir, "s"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() { c, _ := l.Accept(); accepted <- c }()
	c, err := net.Dial("unix", filepath.Join(dir, "s"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := <-accepted
	var tr Tracker
	ctx := tr.ConnContext(context.Background(), s)
	cred, ok := FromContext(ctx)
	if !ok || cred.PID != os.Getpid() || cred.UID != uint32(os.Getuid()) {
		t.Fatalf("cred %+v, ok %v; want pid %d uid %d", cred, ok, os.Getpid(), os.Getuid())
	}
	tr.ConnState(s, http.StateClosed) // closes the pidfd
	s.Close()
	if _, err := Unix(context.Background(), nil); !errors.Is(err, ErrNoCred) {
		t.Fatalf("no credentials: %v, want ErrNoCred", err)
	}
}
