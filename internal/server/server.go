package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/coconut-os/coconut/api"
	"github.com/coconut-os/coconut/internal/agent"
	"github.com/coconut-os/coconut/internal/audit"
	"github.com/coconut-os/coconut/internal/cgroup"
	"github.com/coconut-os/coconut/internal/events"
	"github.com/coconut-os/coconut/internal/fairq"
	"github.com/coconut-os/coconut/internal/peer"
	"github.com/coconut-os/coconut/internal/sign"
)

// Server serves the API.
type Server struct {
	agents *agent.Manager
	chain  *audit.Chain
	trust  *sign.Trust
	tree   *cgroup.Tree
	doctor func() api.Doctor
	infer  func() api.Inference
	events *events.Service // issue 13: GET /v1/events
	// streams ends the event streams on Shutdown, which would otherwise
	// wait for them until its deadline.
	streams    context.Context
	endStreams context.CancelFunc
	log        *slog.Logger
	mux        *http.ServeMux
	http       *http.Server
	peers      peer.Tracker // the callers' credentials, per connection
	// loginLink issues Center login links (issue 13, center.go); nil
	// without a Center.
	loginLink func(uid uint32, next string) (string, error)
	// turns admits calls fairly per caller (admit.go).
	turns *fairq.Gate
}

// Config wires a Server.
type Config struct {
	Agents *agent.Manager
	Chain  *audit.Chain
	Trust  *sign.Trust
	Tree   *cgroup.Tree
	Doctor func() api.Doctor
	// Inference snapshots the inference broker (issue 6).
	Inference func() api.Inference
	// Events is the event stream (issue 13); nil: one over Chain and Agents.
	Events *events.Service
	Log    *slog.Logger
	// CenterLogin issues a Center login link for a uid (issue 13; nil: no
	// Center).
	CenterLogin func(uid uint32, next string) (string, error)
}

// New builds the handler table.
func New(cfg Config) *Server {
	s := &Server{agents: cfg.Agents, chain: cfg.Chain, trust: cfg.Trust, tree: cfg.Tree, doctor: cfg.Doctor, infer: cfg.Inference, log: cfg.Log, mux: http.NewServeMux(), turns: newTurns()}
	if s.events = cfg.Events; s.events == nil {
		s.events = events.New(cfg.Chain, cfg.Agents)
	}
	s.loginLink = cfg.CenterLogin // issue 13: center.go
	s.streams, s.endStreams = context.WithCancel(context.Background())
	s.routes()
	s.http = &http.Server{
		Handler:           s,
		ConnContext:       s.connContext,
		ConnState:         s.connState,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(cfg.Log.Handler(), slog.LevelWarn),
	}
	s.http.RegisterOnShutdown(s.endStreams)
	return s
}

// Listen creates the socket (replacing a stale one) and serves until
// Shutdown. Every local user may connect; each call decides from the
// caller's credentials what it may do.
func (s *Server) Listen(path string) (net.Listener, error) { return ListenSocket(path) }

// ListenSocket creates a Unix socket at path, open to every local user
// (mode 0666: the kernel says who connected). A stale socket left by a
// dead daemon is replaced; a live one, or anything that is not a socket,
// is an error.
func ListenSocket(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create socket directory: %w", err)
	}
	if st, err := os.Lstat(path); err == nil {
		if st.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("%s exists and is not a socket: refusing to replace it", path)
		}
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return nil, fmt.Errorf("%s: another coconutd is serving it", path)
		}
		os.Remove(path)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o666); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// Serve serves on l until Shutdown.
func (s *Server) Serve(l net.Listener) error {
	err := s.http.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting and waits for calls in flight.
func (s *Server) Shutdown(ctx context.Context) error { return s.http.Shutdown(ctx) }

// ServeHTTP refuses what a browser could send before dispatching: a web
// page must never drive the daemon (DNS rebinding, a local proxy).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Origin") != "" || r.Header.Get("Referer") != "" || r.Header.Get("Sec-Fetch-Site") != "" {
		s.fail(w, r, api.Errorf(api.ErrDenied, "requests from web pages are refused"))
		return
	}
	s.mux.ServeHTTP(w, r)
}

// fail writes err as the error envelope with its status.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	status, code := api.Status(err)
	if status >= 500 && status != http.StatusNotImplemented {
		s.log.Error("call failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(api.ErrorBody{Error: api.ErrorDetail{Code: code, Message: oneLine(err.Error())}})
}

func oneLine(s string) string { return strings.ReplaceAll(strings.TrimSpace(s), "\n", "; ") }

func (s *Server) reply(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// decode reads a bounded JSON body strictly: unknown fields, wrong types,
// trailing data and oversize bodies are precise errors.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	r.Body = http.MaxBytesReader(w, r.Body, api.MaxBodyBytes)
	return decodeBody(r.Body, v)
}

func decodeBody(body io.Reader, v any) error {
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		var typeErr *json.UnmarshalTypeError
		var syntaxErr *json.SyntaxError
		switch {
		case errors.As(err, &tooBig):
			return api.Errorf(api.ErrTooLarge, "request body is over %d bytes", tooBig.Limit)
		case errors.As(err, &typeErr):
			return api.Errorf(api.ErrInvalid, "request body: field %q: expected %s, got JSON %s", typeErr.Field, typeErr.Type, typeErr.Value)
		case errors.As(err, &syntaxErr):
			return api.Errorf(api.ErrInvalid, "request body: malformed JSON at byte %d: %v", syntaxErr.Offset, err)
		case errors.Is(err, io.EOF):
			return api.Errorf(api.ErrInvalid, "request body: empty")
		default:
			return api.Errorf(api.ErrInvalid, "request body: %v", err)
		}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return api.Errorf(api.ErrTooLarge, "request body is over %d bytes", tooBig.Limit)
		}
		return api.Errorf(api.ErrInvalid, "request body: trailing data after the JSON value")
	}
	return nil
}
