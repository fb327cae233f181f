package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/coconut-os/coconut/api"
	"github.com/coconut-os/coconut/internal/agent"
	"github.com/coconut-os/coconut/internal/audit"
	"github.com/coconut-os/coconut/internal/broker"
	"github.com/coconut-os/coconut/internal/cgroup"
	"github.com/coconut-os/coconut/internal/config"
	"github.com/coconut-os/coconut/internal/inferkey"
	"github.com/coconut-os/coconut/internal/peer"
	"github.com/coconut-os/coconut/internal/server"
)

const (
	// BrokerSocketName is the broker's Unix socket, beside the API socket.
	BrokerSocketName = "broker.sock"
	// DefaultBrokerAddr is the broker's loopback TCP address when neither
	// --broker-addr nor broker_addr names one.
	DefaultBrokerAddr = "127.0.0.1:7878"
)

// brokerSvc is the inference broker served on its two listeners: the Unix
// socket (identity from SO_PEERCRED) and loopback TCP (identity from the
// agent's key and its socket's cgroup; /metrics only here).
type brokerSvc struct {
	b      *broker.Broker
	sock   string
	addr   netip.AddrPort
	unixL  net.Listener
	tcpL   net.Listener
	unixS  *http.Server
	tcpS   *http.Server
	peers  peer.Tracker
	tree   *cgroup.Tree
	chain  *audit.Chain
	agents func() *agent.Manager // set once the manager exists, before serving
	log    *slog.Logger
	// userTokens is each user's token budget across their agents
	// ([broker] user_token_budget); 0: none.
	userTokens int64
	// hostRows rate-limits the refusal rows of callers that are not
	// agents (broker_hooks.go).
	hostRows rowBudget
	// calls counts repeated finished calls into aggregate rows
	// (broker_agg.go); nil until openBroker is done.
	calls *callAggregator
}

// ParseBrokerAddr checks a broker address: a loopback IP (or localhost)
// and a port (0 picks a free one). The broker's key check trusts only
// sockets of this machine, so any other address is refused.
func ParseBrokerAddr(s string) (netip.AddrPort, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("broker address %q: want HOST:PORT on loopback: %v", s, err)
	}
	if host == "localhost" {
		host = "127.0.0.1"
	}
	a, err := netip.ParseAddr(host)
	if err != nil || a.Zone() != "" {
		return netip.AddrPort{}, fmt.Errorf("broker address %q: the host must be a loopback IP address (127.0.0.1 or [::1])", s)
	}
	if !a.Unmap().IsLoopback() {
		return netip.AddrPort{}, fmt.Errorf("broker address %q: %s is not a loopback address; the broker serves only this machine's agents (their keys are checked against their sockets, which only works locally)", s, a)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("broker address %q: bad port %q", s, port)
	}
	return netip.AddrPortFrom(a.Unmap(), uint16(p)), nil
}

// openBroker builds the broker and opens its listeners, so the addresses
// agents are told exist before the first agent is spawned (or adopted).
// An address named by flag or config must be free; the default one, when
// taken (another coconutd, a test daemon), falls back to a free loopback
// port, which doctor reports and agents are told.
// metrics are served on /metrics beside the broker's own (issue 17: the
// audit export's).
func openBroker(opts Options, tree *cgroup.Tree, chain *audit.Chain, log *slog.Logger, metrics ...prometheus.Gatherer) (*brokerSvc, error) {
	s := &brokerSvc{tree: tree, chain: chain, log: log, sock: filepath.Join(filepath.Dir(opts.Socket), BrokerSocketName), userTokens: opts.Broker.UserTokenBudget}
	cfg, err := brokerConfig(opts.Broker)
	if err != nil {
		return nil, err
	}
	explicit := opts.BrokerAddr != ""
	addrS := opts.BrokerAddr
	if !explicit {
		addrS = DefaultBrokerAddr
	}
	ap, err := ParseBrokerAddr(addrS)
	if err != nil {
		return nil, err
	}
	if s.tcpL, err = net.Listen("tcp", ap.String()); err != nil {
		if explicit || !errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("inference broker: listen on %s: %w", ap, err)
		}
		log.Warn("default broker address taken: serving on a free loopback port (set broker_addr to choose)", "addr", ap, "err", err)
		if s.tcpL, err = net.Listen("tcp", netip.AddrPortFrom(ap.Addr(), 0).String()); err != nil {
			return nil, fmt.Errorf("inference broker: listen on %s: %w", ap.Addr(), err)
		}
	}
	s.addr = s.tcpL.Addr().(*net.TCPAddr).AddrPort()
	if s.unixL, err = listenUnix(s.sock); err != nil {
		s.tcpL.Close()
		return nil, fmt.Errorf("inference broker: %w", err)
	}
	if s.b, err = broker.New(cfg, broker.Hooks{Identify: s.identify, Recheck: s.recheck, Audit: s.audit, Blocked: s.blocked, Spent: s.spent}); err != nil {
		s.tcpL.Close()
		s.unixL.Close()
		os.Remove(s.sock)
		return nil, fmt.Errorf("inference broker: %w", err)
	}
	s.calls = newCallAggregator(chain, log, opts.AuditEachUse) // issue 19
	errLog := slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	s.unixS = &http.Server{Handler: s.b.Handler(), ConnContext: s.peers.ConnContext, ConnState: s.peers.ConnState,
		ReadHeaderTimeout: 10 * time.Second, ErrorLog: errLog}
	tcpMux := http.NewServeMux()
	tcpMux.Handle("/metrics", s.b.Metrics(metrics...))
	tcpMux.Handle("/", s.b.Handler())
	s.tcpS = &http.Server{Handler: notFromBrowser(tcpMux), ConnContext: peer.TCPConnContext,
		ReadHeaderTimeout: 10 * time.Second, ErrorLog: errLog}
	return s, nil
}

// listenUnix creates the broker's socket (replacing a stale one), open to
// every local user: the kernel says who connected, and only agents are
// served. Its directory must stay traversable by the agents' users.
func listenUnix(path string) (net.Listener, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create socket directory: %w", err)
	}
	if st, err := os.Stat(dir); err == nil && st.Mode().Perm()&0o001 == 0 {
		return nil, fmt.Errorf("%s (mode %v) is not traversable by other users: agents could not reach %s", dir, st.Mode().Perm(), filepath.Base(path))
	}
	return server.ListenSocket(path)
}

// brokerConfig maps the [broker] table onto the broker's Config. The
// upstream's key is read from its file here: it never sits in the config.
func brokerConfig(c config.Broker) (broker.Config, error) {
	cfg := broker.Config{
		Policy: c.Policy, Slots: c.Slots, ContextTokens: c.ContextTokens, OverBudget: c.OverBudget,
		DefaultMaxTokens: c.DefaultMaxTokens, KVBytesPerToken: c.KVBytesPerToken, Headroom: c.Headroom,
	}
	grace, err := c.MetricsGraceDuration()
	if err != nil {
		return broker.Config{}, fmt.Errorf("broker: %w", err) // validate refused it already
	}
	cfg.MetricsGrace = grace
	if c.UpstreamURL == "" {
		sim, err := broker.NewSim(simConfig(c))
		if err != nil {
			return broker.Config{}, fmt.Errorf("broker: %w", err)
		}
		cfg.Backend = sim
		return cfg, nil
	}
	key := ""
	if c.UpstreamKeyFile != "" {
		var err error
		if key, err = readKeyFile(c.UpstreamKeyFile); err != nil {
			return broker.Config{}, err
		}
	}
	slots := c.Slots
	if slots <= 0 {
		slots = 8 // the broker's default: the upstream's concurrency is the broker's slots
	}
	up, err := broker.NewUpstream(c.UpstreamURL, key, slots)
	if err != nil {
		return broker.Config{}, fmt.Errorf("broker upstream: %w", err)
	}
	cfg.Backend = up
	return cfg, nil
}

// simConfig is DefaultSimConfig with what [broker.sim] sets.
func simConfig(c config.Broker) broker.SimConfig {
	sc := broker.DefaultSimConfig()
	set := func(dst *int64, v int64) {
		if v > 0 {
			*dst = v
		}
	}
	if c.Slots > 0 {
		sc.Slots = c.Slots // the backend's real concurrency is the broker's slots
	}
	if c.Sim.Slots > 0 {
		sc.Slots = c.Sim.Slots
	}
	if c.Sim.PrefillUS > 0 {
		sc.PrefillPerToken = time.Duration(c.Sim.PrefillUS * float64(time.Microsecond))
	}
	if c.Sim.DecodeUS > 0 {
		sc.DecodePerToken = time.Duration(c.Sim.DecodeUS * float64(time.Microsecond))
	}
	if c.Sim.Jitter > 0 {
		sc.Jitter = c.Sim.Jitter
	}
	if c.Sim.Output != "" {
		sc.Output = c.Sim.Output
	}
	set(&sc.OutputMean, c.Sim.OutputMean)
	set(&sc.OutputMax, c.Sim.OutputMax)
	if c.Sim.Model != "" {
		sc.Models = []string{c.Sim.Model}
	}
	return sc
}

// readKeyFile reads an upstream API key from a root-only file.
func readKeyFile(path string) (string, error) {
	b, err := readSecretFile("broker upstream_key_file", path)
	if err != nil {
		return "", err
	}
	key := strings.TrimSpace(string(b))
	if key == "" || strings.ContainsAny(key, "\r\n") {
		return "", fmt.Errorf("broker upstream_key_file %s: want one line holding the key", path)
	}
	return key, nil
}

// readSecretFile reads a file that holds a credential (an API key, export
// headers). One that others can read is refused rather than used: the
// key may already have leaked, and using it would hide that.
func readSecretFile(what, path string) ([]byte, error) {
	// O_NONBLOCK: a FIFO put there must not hang the daemon's start;
	// O_NOFOLLOW: the file named, not what a link points at.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer f.Close()
	st, err := f.Stat() // the file opened, not a path swapped after a check
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if !st.Mode().IsRegular() || st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s %s: must be a regular file readable only by its owner (chmod 600), is %v", what, path, st.Mode())
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && sys.Uid != 0 && int(sys.Uid) != os.Geteuid() {
		return nil, fmt.Errorf("%s %s: owned by uid %d: must be root's (or this daemon's user's)", what, path, sys.Uid)
	}
	const most = 1 << 20
	b, err := io.ReadAll(io.LimitReader(f, most+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if len(b) > most {
		return nil, fmt.Errorf("%s %s: larger than 1 MiB", what, path)
	}
	return b, nil
}

// serve starts both listeners; errors go to errc.
func (s *brokerSvc) serve(errc chan<- error) {
	for _, p := range []struct {
		srv *http.Server
		l   net.Listener
	}{{s.unixS, s.unixL}, {s.tcpS, s.tcpL}} {
		go func() {
			if err := p.srv.Serve(p.l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("inference broker on %s: %w", p.l.Addr(), err)
			}
		}()
	}
}

// shutdown stops accepting and lets calls in flight finish (until ctx
// ends); close releases the rest.
func (s *brokerSvc) shutdown(ctx context.Context) {
	s.unixS.Shutdown(ctx)
	s.tcpS.Shutdown(ctx)
}

// close releases everything without waiting (also when New fails).
func (s *brokerSvc) close() {
	s.unixS.Close() // no-op after a clean shutdown
	s.tcpS.Close()
	s.unixL.Close()
	s.tcpL.Close()
	if err := s.b.Close(); err != nil {
		s.log.Warn("close inference broker", "err", err)
	}
	if s.calls != nil {
		s.calls.close() // broker_agg.go: the pending rows, after the last call
	}
	if err := os.Remove(s.sock); err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.log.Warn("remove broker socket", "err", err)
	}
}

// env is what agents are told.
func (s *brokerSvc) env() inferkey.Broker { return inferkey.Broker{Socket: s.sock, Addr: s.addr} }

// notFromBrowser refuses what only a browser sends, and Host names other
// than loopback: a web page must not reach the broker (DNS rebinding).
func notFromBrowser(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Origin") != "" || r.Header.Get("Sec-Fetch-Site") != "" || !loopbackHost(r.Host) {
			openAIError(w, http.StatusForbidden, "permission_denied", "requests from web pages or for other host names are refused")
			return
		}
		h.ServeHTTP(w, r)
	})
}

func loopbackHost(h string) bool {
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	if h == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(strings.Trim(h, "[]"))
	return err == nil && a.Unmap().IsLoopback()
}

// openAIError writes an error the way OpenAI clients expect it.
func openAIError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"message": msg, "type": code, "code": code, "param": nil}})
}

// doctorInfo is the broker's line in doctor.
func (s *brokerSvc) doctorInfo(d *api.Doctor) {
	d.BrokerSocket, d.BrokerAddr = s.sock, s.addr.String()
}

// inference is the broker's snapshot in wire form (GET /v1/inference).
func (s *brokerSvc) inference() api.Inference {
	st := s.b.Stats()
	out := api.Inference{Policy: st.Policy, Slots: st.Slots, InFlight: st.InFlight, Queued: st.Queued,
		ContextUsed: st.ContextUsed, TokensIn: st.TokensIn, TokensOut: st.TokensOut,
		Blocked: st.Blocked, Agents: make([]api.InferenceAgent, 0, len(st.Agents))}
	for _, a := range st.Agents {
		out.Agents = append(out.Agents, api.InferenceAgent{AID: a.AID, TokensIn: a.TokensIn, TokensOut: a.TokensOut,
			Queued: a.Queued, InFlight: a.InFlight, Reserved: a.Reserved, Blocked: a.Blocked, Reason: a.Reason})
	}
	return out
}
