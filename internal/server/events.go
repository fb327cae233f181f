package server

import (
	"context"
	"net/http"

	"github.com/coconut-os/coconut/internal/agent"
	"github.com/coconut-os/coconut/internal/events"
)

// eventStream is GET /v1/events: the rows the caller may see after since,
// then live, as Server-Sent Events (internal/events). It ends when the
// client goes away or the server shuts down.
func (s *Server) eventStream(w http.ResponseWriter, r *http.Request, c agent.Caller) error {
	since, f, err := events.ParseRequest(r)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	defer context.AfterFunc(s.streams, cancel)()
	st, err := s.events.Subscribe(ctx, c, since, f)
	if err != nil {
		return err
	}
	return events.Serve(w, r.WithContext(ctx), st, events.Heartbeat)
}
