package server

import (
	"net/http"

	"github.com/coconut-os/coconut/api"
	"github.com/coconut-os/coconut/internal/agent"
)

// centerLogin is POST /v1/center/login: a single-use, 60-second login
// link to the Center for the uid the kernel says is calling. An agent
// gets none: the Center is for people.
func (s *Server) centerLogin(w http.ResponseWriter, r *http.Request, c agent.Caller) error {
	if s.loginLink == nil {
		return api.Errorf(api.ErrUnavailable, "the Center is not running: start coconutd with --center-addr 127.0.0.1:PORT or [center] addr in coconut.toml")
	}
	if c.AID != 0 {
		return api.Errorf(api.ErrDenied, "agent %d may not log in to the Center", c.AID)
	}
	var req api.CenterLoginRequest
	if r.ContentLength != 0 {
		if err := decode(w, r, &req); err != nil {
			return err
		}
	}
	url, err := s.loginLink(c.UID, req.Next)
	if err != nil {
		return err
	}
	s.reply(w, api.CenterLogin{URL: url, ExpiresIn: 60})
	return nil
}
