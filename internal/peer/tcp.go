package peer

import (
	"context"
	"fmt"
	"net"
)

type tcpKey struct{}

// tcpPeer is the cgroup of the client's socket, looked up once when the
// connection was accepted: a socket's cgroup is fixed at its creation.
type tcpPeer struct {
	cgroup uint64
	err    error
}

// TCPConnContext looks up the client's socket of a loopback TCP connection
// and stores its cgroup id in ctx (plug it into an http.Server).
func TCPConnContext(ctx context.Context, c net.Conn) context.Context {
	p := &tcpPeer{}
	la, lok := c.LocalAddr().(*net.TCPAddr)
	ra, rok := c.RemoteAddr().(*net.TCPAddr)
	if !lok || !rok {
		p.err = fmt.Errorf("%w: not a TCP connection", ErrNoSocket)
	} else {
		// The client's socket has the client's address as its own.
		p.cgroup, p.err = SocketCgroup(ra.AddrPort(), la.AddrPort())
	}
	return context.WithValue(ctx, tcpKey{}, p)
}

// TCPCgroup returns the cgroup id TCPConnContext found for the request's
// connection.
func TCPCgroup(ctx context.Context) (uint64, error) {
	p, ok := ctx.Value(tcpKey{}).(*tcpPeer)
	if !ok {
		return 0, fmt.Errorf("%w: connection not tracked", ErrNoSocket)
	}
	return p.cgroup, p.err
}
