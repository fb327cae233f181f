package server

import (
	"context"
	"errors"
	"net"
	"net/http"

	"github.com/coconut-os/coconut/api"
	"github.com/coconut-os/coconut/internal/agent"
	"github.com/coconut-os/coconut/internal/peer"
)

// connContext stores the peer's credentials, read once per connection
// (internal/peer, shared with the inference broker).
func (s *Server) connContext(ctx context.Context, c net.Conn) context.Context {
	return s.peers.ConnContext(ctx, c)
}

// connState closes the peer's pidfd when the connection ends.
func (s *Server) connState(c net.Conn, st http.ConnState) { s.peers.ConnState(c, st) }

// caller resolves who is asking. A request without kernel credentials is
// refused: there is no anonymous caller.
func (s *Server) caller(r *http.Request) (agent.Caller, error) {
	id, err := peer.Unix(r.Context(), s.tree)
	switch {
	case errors.Is(err, peer.ErrNoCred), errors.Is(err, peer.ErrGone):
		return agent.Caller{}, api.Errorf(api.ErrDenied, "%v", err)
	case err != nil:
		return agent.Caller{}, err
	}
	return agent.Caller{UID: id.UID, PID: id.PID, AID: id.AID}, nil
}
