package broker

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Broker is the inference broker: an OpenAI-compatible front, the fair
// scheduler with its budgets, and a backend.
type Broker struct {
	cfg     Config
	hooks   Hooks
	be      Backend
	s       *scheduler
	hr      *hookRunner
	m       *metrics
	latency map[Endpoint]prometheus.Observer
	idBase  string
	ids     atomic.Uint64
	bufs    sync.Pool
	closed  atomic.Bool
	calls   atomic.Int64 // inference handlers running (Close waits for them)
}

// withDefaults fills the zero fields of cfg and checks the rest.
func withDefaults(cfg Config) (Config, error) {
	if cfg.Policy == "" {
		cfg.Policy = PolicyVTC
	}
	if cfg.Policy != PolicyVTC && cfg.Policy != PolicyFIFO {
		return cfg, fmt.Errorf("%w: policy %q (want vtc or fifo)", ErrBadRequest, cfg.Policy)
	}
	if cfg.OverBudget == "" {
		cfg.OverBudget = OverBudgetWait
	}
	if cfg.OverBudget != OverBudgetWait && cfg.OverBudget != OverBudgetReject {
		return cfg, fmt.Errorf("%w: over_budget %q (want wait or reject)", ErrBadRequest, cfg.OverBudget)
	}
	if cfg.Slots <= 0 {
		cfg.Slots = 8
	}
	if cfg.ContextTokens <= 0 {
		cfg.ContextTokens = 65536
	}
	if cfg.DefaultMaxTokens <= 0 {
		cfg.DefaultMaxTokens = 256
	}
	if cfg.KVBytesPerToken <= 0 {
		cfg.KVBytesPerToken = 131072
	}
	if cfg.Headroom == 0 {
		cfg.Headroom = max(1, cfg.Slots/2)
		if cfg.Headroom >= cfg.Slots {
			cfg.Headroom = -1 // one slot: nothing to keep back
		}
	}
	if cfg.Headroom >= cfg.Slots {
		return cfg, fmt.Errorf("%w: headroom %d must be below slots %d", ErrBadRequest, cfg.Headroom, cfg.Slots)
	}
	if cfg.ActiveWindow <= 0 {
		cfg.ActiveWindow = 2 * time.Second
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 4 << 20
	}
	if cfg.MaxQueue <= 0 {
		cfg.MaxQueue = 4096
	}
	if cfg.MaxQueuePerAgent <= 0 {
		cfg.MaxQueuePerAgent = 256
	}
	cfg.MaxQueuePerAgent = min(cfg.MaxQueuePerAgent, cfg.MaxQueue)
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 30 * time.Second
	}
	if cfg.MetricsGrace == 0 {
		cfg.MetricsGrace = 5 * time.Minute
	}
	return cfg, nil
}

// New returns a broker. A nil cfg.Backend runs the simulated backend with
// DefaultSimConfig and cfg.Slots slots. Close closes the backend too.
func New(cfg Config, h Hooks) (*Broker, error) {
	cfg, err := withDefaults(cfg)
	if err != nil {
		return nil, fmt.Errorf("broker config: %w", err)
	}
	if cfg.Backend == nil {
		sc := DefaultSimConfig()
		sc.Slots = cfg.Slots
		sim, err := NewSim(sc)
		if err != nil {
			return nil, err
		}
		cfg.Backend = sim
	}
	b := &Broker{cfg: cfg, hooks: h, be: cfg.Backend, hr: newHookRunner(h),
		idBase: strconv.FormatInt(time.Now().UnixNano()%1e9, 36) + "-"}
	b.s = newScheduler(cfg, b.hr)
	b.m = newMetrics(b.s)
	b.m.grace = cfg.MetricsGrace
	b.s.onNew = b.m.tenant
	b.latency = map[Endpoint]prometheus.Observer{}
	for _, ep := range []Endpoint{EndpointChat, EndpointCompletions, EndpointEmbeddings} {
		b.latency[ep] = b.m.latency.WithLabelValues(string(ep))
	}
	b.bufs.New = func() any { p := make([]byte, 0, 4096); return &p }
	return b, nil
}

// Metrics serves the broker's Prometheus metrics (text format), and those
// of more (coconutd's other parts, such as the audit export) beside them.
func (b *Broker) Metrics(more ...prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(append(prometheus.Gatherers{b.m.reg}, more...), promhttp.HandlerOpts{})
}

// Stats returns a snapshot for `coconut top` and the Center.
func (b *Broker) Stats() Stats {
	s := b.s
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{Policy: s.policy, Slots: s.slots, InFlight: s.inflight, Queued: s.queued, ContextUsed: s.ctxUsed,
		Blocked: []uint64{}, Agents: make([]AgentStats, 0, len(s.tenants))}
	for _, t := range s.tenants {
		st.TokensIn += t.tokensIn
		st.TokensOut += t.tokensOut
		st.Agents = append(st.Agents, AgentStats{AID: t.aid, TokensIn: t.tokensIn, TokensOut: t.tokensOut,
			Queued: t.queue.len, InFlight: t.inflight, Reserved: t.reserved, Blocked: t.blocked,
			Reason: t.reason, Counter: t.counter})
		if t.blocked {
			st.Blocked = append(st.Blocked, t.aid)
		}
	}
	slices.SortFunc(st.Agents, func(a, b AgentStats) int { return cmpU64(a.AID, b.AID) })
	slices.Sort(st.Blocked)
	return st
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Forget drops an ended agent's scheduler state (after its last request,
// if some are still queued or running) and, Config.MetricsGrace later, its
// per-agent series.
func (b *Broker) Forget(aid uint64) { b.s.forget(aid) }

// closeWait bounds how long Close waits for handlers still running.
const closeWait = 10 * time.Second

// Close refuses queued requests, waits (up to closeWait) for the handlers
// still running to write their audit rows and report their usage, then
// delivers pending hook calls and closes the backend. Callers cancel
// requests in flight first (closing the HTTP servers does) so that they
// end quickly.
func (b *Broker) Close() error {
	if b.closed.Swap(true) {
		return nil
	}
	b.s.close()
	// A counter polled, not a WaitGroup: a request may still arrive while
	// Close waits (it is refused by the closed scheduler at once).
	for deadline := time.Now().Add(closeWait); b.calls.Load() > 0 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	b.hr.close()
	return b.be.Close()
}
