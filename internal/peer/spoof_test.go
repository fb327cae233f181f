package peer

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// reusePort is a net.ListenConfig/Dialer Control that sets SO_REUSEPORT,
// as an agent's listener (and an impostor sharing its port) would.
func reusePort(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	})
	if err != nil {
		return err
	}
	return serr
}

// reuseListener listens with SO_REUSEPORT on addr (port 0: any).
func reuseListener(t *testing.T, addr string) net.Listener {
	t.Helper()
	lc := net.ListenConfig{Control: reusePort}
	l, err := lc.Listen(context.Background(), "tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// dialFrom connects to server from local, sharing local's port with an
// SO_REUSEPORT listener.
func dialFrom(t *testing.T, local netip.AddrPort, server net.Addr) *net.TCPConn {
	t.Helper()
	d := net.Dialer{Control: reusePort, LocalAddr: net.TCPAddrFromAddrPort(local)}
	c, err := d.Dial("tcp4", server.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

func accept(t *testing.T, l net.Listener) net.Conn {
	t.Helper()
	s, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// The kernel's exact lookup falls back to a listener on the asked port
// when no connected socket has the tuple (review finding #5): such
// answers must be refused, never attributed to the listener's cgroup.
func TestSocketCgroupRefusesListeners(t *testing.T) {
	ownCgroupID(t) // skips without cgroup v2, where the lookup cannot work either
	agent := reuseListener(t, "0.0.0.0:0")
	agentPort := uint16(agent.Addr().(*net.TCPAddr).Port)
	broker := reuseListener(t, "127.0.0.1:0")
	brokerAddr := netip.MustParseAddrPort(broker.Addr().String())
	tests := []struct {
		name          string
		local, remote netip.AddrPort
	}{
		{"wildcard listener, other address", netip.AddrPortFrom(netip.MustParseAddr("127.0.0.5"), agentPort), brokerAddr},
		{"wildcard listener, loopback", netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), agentPort), brokerAddr},
		{"broker listener itself", brokerAddr, netip.MustParseAddrPort("127.0.0.1:7878")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cg, err := SocketCgroup(tt.local, tt.remote)
			if !errors.Is(err, ErrNoSocket) {
				t.Fatalf("lookup of %s -> %s: cgroup %d, %v; want ErrNoSocket", tt.local, tt.remote, cg, err)
			}
		})
	}
}

// A client whose socket shares a listener's port is still identified by
// its own connected socket.
func TestSocketCgroupSharedPort(t *testing.T) {
	want := ownCgroupID(t)
	agent := reuseListener(t, "127.0.0.1:0")
	broker := reuseListener(t, "127.0.0.1:0")
	dialFrom(t, netip.MustParseAddrPort(agent.Addr().String()), broker.Addr())
	s := accept(t, broker)
	got, err := TCPCgroup(TCPConnContext(context.Background(), s))
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("client socket cgroup %d, want ours %d", got, want)
	}
}

// The spoof of finding #5: a client binds to an agent's SO_REUSEPORT
// listener port, connects, and resets the connection before the broker
// accepts it. Its socket is gone, so the only socket with that port is
// the agent's listener: the broker must refuse the connection rather
// than charge it to the agent.
func TestSocketCgroupResetBeforeAccept(t *testing.T) {
	ownCgroupID(t)
	agent := reuseListener(t, "127.0.0.1:0")
	broker := reuseListener(t, "127.0.0.1:0")
	c := dialFrom(t, netip.MustParseAddrPort(agent.Addr().String()), broker.Addr())
	if _, err := c.Write([]byte("POST /v1/chat/completions HTTP/1.1\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	if err := c.SetLinger(0); err != nil { // close sends RST, no TIME_WAIT
		t.Fatal(err)
	}
	c.Close()
	s := accept(t, broker)
	cg, err := TCPCgroup(TCPConnContext(context.Background(), s))
	if !errors.Is(err, ErrNoSocket) {
		t.Fatalf("reset connection from a listener's port: cgroup %d, %v; want ErrNoSocket", cg, err)
	}
}

// An AF_INET6 client socket connected to a v4-mapped address is reported
// by sock_diag with v4-mapped addresses: it must still match the IPv4
// tuple the server sees.
func TestSocketCgroupV4MappedClient(t *testing.T) {
	want := ownCgroupID(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Skipf("no IPv6 sockets: %v", err)
	}
	defer unix.Close(fd)
	mapped := &unix.SockaddrInet6{Port: l.Addr().(*net.TCPAddr).Port, Addr: netip.MustParseAddr("::ffff:127.0.0.1").As16()}
	if err := unix.Connect(fd, mapped); err != nil {
		t.Skipf("no v4-mapped connect: %v", err)
	}
	s := accept(t, l)
	got, err := TCPCgroup(TCPConnContext(context.Background(), s))
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("client socket cgroup %d, want ours %d", got, want)
	}
}
