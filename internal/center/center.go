package center

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/coconut-os/coconut/api"
	"github.com/coconut-os/coconut/internal/agent"
	"github.com/coconut-os/coconut/internal/audit"
	"github.com/coconut-os/coconut/internal/checkpoint"
	"github.com/coconut-os/coconut/internal/events"
	"github.com/coconut-os/coconut/internal/sign"
)

// ErrNotLoopback refuses a Center address other hosts could reach.
var ErrNotLoopback = errors.New("the Center listens on a loopback address only (127.0.0.1, ::1 or localhost)")

// Config wires a Center to the daemon's services: the same ones the Unix
// API calls.
type Config struct {
	Addr    string         // host:port, loopback; port 0 picks one
	Agents  *agent.Manager // who may see and do what
	Chain   *audit.Chain   // rows, pages, predecessors
	Events  *events.Service
	Proofs  *checkpoint.Log // inclusion proofs; nil: the page says so
	Trust   *sign.Trust     // attestation check (signer trusted for the uid)
	HostPub ed25519.PublicKey
	// Counters are the daemon's deny counters (agent.Manager.Counters):
	// the alarm shows when the kernel's and the chain's disagree.
	Counters func() map[string]uint64
	// Doctor is the daemon's doctor report; its counters_alarm (the kept
	// record of counters that differed, when the daemon has one) is shown
	// as the alarm too.
	Doctor func() api.Doctor
	// Inference snapshots the broker (nil: no broker).
	Inference  func() api.Inference
	PricePer1K float64 // [broker] price_per_1k_tokens; 0: no cost shown
	// Tiles is the tlog-tiles directory served at /tiles/ (coconut audit
	// tiles writes STATE/tiles); "": none.
	Tiles string
	Log   *slog.Logger
}

// Center is the running web UI.
type Center struct {
	cfg   Config
	log   *slog.Logger
	auth  *auth
	mux   *http.ServeMux
	http  *http.Server
	ln    net.Listener
	hosts map[string]bool // Host header values this Center answers to
	base  string          // http://addr, what login links start with
	stats *stats
	stop  context.CancelFunc
	wg    sync.WaitGroup
	// streams ends the pages' event streams on Shutdown, which would
	// otherwise wait for them until its deadline.
	streams    context.Context
	endStreams context.CancelFunc
}

// CheckAddr refuses an address that is not loopback. "localhost" is taken
// as 127.0.0.1, never resolved (a resolver could say anything).
func CheckAddr(addr string) (netip.AddrPort, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("center address %q: %v", addr, err)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("center address %q: port %q is not a number 0..65535", addr, port)
	}
	if host == "localhost" {
		host = "127.0.0.1"
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.IsLoopback() || ip.Zone() != "" {
		return netip.AddrPort{}, fmt.Errorf("center address %q: %w", addr, ErrNotLoopback)
	}
	return netip.AddrPortFrom(ip.Unmap(), uint16(p)), nil
}

// Listen checks the address and binds it. Nothing is served until Serve.
func Listen(cfg Config) (*Center, error) {
	ap, err := CheckAddr(cfg.Addr)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", ap.String())
	if err != nil {
		return nil, fmt.Errorf("center: %w", err)
	}
	bound := ln.Addr().(*net.TCPAddr).AddrPort()
	port := strconv.Itoa(int(bound.Port()))
	c := &Center{cfg: cfg, log: cfg.Log, auth: newAuth(), mux: http.NewServeMux(), ln: ln,
		hosts: map[string]bool{bound.String(): true, "localhost:" + port: true},
		base:  "http://" + bound.String()}
	if h, _, _ := net.SplitHostPort(cfg.Addr); h == "localhost" {
		c.base = "http://localhost:" + port
	}
	c.stats = newStats(cfg)
	c.streams, c.endStreams = context.WithCancel(context.Background())
	c.routes()
	c.http = &http.Server{
		Handler:           c,
		ReadHeaderTimeout: 10 * time.Second,
		MaxHeaderBytes:    maxHeaderBytes,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(cfg.Log.Handler(), slog.LevelWarn),
	}
	c.http.RegisterOnShutdown(c.endStreams)
	return c, nil
}

// Addr is where the Center listens (the port chosen when 0 was asked).
func (c *Center) Addr() string { return c.ln.Addr().String() }

// Serve answers until Shutdown; it also runs the samplers behind the top
// bar, the agents' last events and the plots.
func (c *Center) Serve() error {
	ctx, cancel := context.WithCancel(context.Background())
	c.stop = cancel
	c.wg.Add(1)
	go func() { defer c.wg.Done(); c.stats.run(ctx) }()
	err := c.http.Serve(c.ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops serving; open event streams end.
func (c *Center) Shutdown(ctx context.Context) error {
	if c.stop != nil {
		c.stop()
	}
	c.http.SetKeepAlivesEnabled(false)
	err := c.http.Shutdown(ctx)
	if err != nil {
		c.http.Close()
	}
	c.wg.Wait()
	return err
}

// LoginLink issues a single-use login link for uid, landing on next (a
// Center page, "" for the agents). It is what POST /v1/center/login on
// the Unix socket answers, for the uid the kernel named.
func (c *Center) LoginLink(uid uint32, next string) (string, error) {
	next, err := cleanNext(next)
	if err != nil {
		return "", api.Errorf(api.ErrInvalid, "%v", err)
	}
	tok, err := c.auth.issue(uid, next)
	if err != nil {
		return "", api.Errorf(api.ErrConflict, "%v", err)
	}
	return c.base + "/login?token=" + tok, nil
}
