package broker

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics is the broker's own Prometheus registry: one per broker, so
// several brokers (tests, the benchmark) never collide on the global one.
type metrics struct {
	reg      *prometheus.Registry
	tokens   *prometheus.CounterVec // aid, dir
	total    *prometheus.CounterVec // dir
	latency  *prometheus.HistogramVec
	rejected *prometheus.CounterVec // reason
	requests *prometheus.CounterVec // result
	grace    time.Duration          // Config.MetricsGrace
}

// tenantMetrics caches a tenant's counter children so the request path does
// no label hashing.
type tenantMetrics struct {
	m       *metrics
	aid     string
	in, out prometheus.Counter
}

func newMetrics(s *scheduler) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "coconut_broker_agent_tokens_total", Help: "Tokens settled per agent, by direction (in: prompt, out: completion).",
		}, []string{"aid", "dir"}),
		total: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "coconut_broker_tokens_total", Help: "Tokens settled over all agents, by direction.",
		}, []string{"dir"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "coconut_broker_request_duration_seconds", Help: "Request latency from arrival to the last byte, by endpoint.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 18),
		}, []string{"endpoint"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "coconut_broker_rejections_total", Help: "Requests refused, by reason.",
		}, []string{"reason"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "coconut_broker_requests_total", Help: "Requests finished, by result.",
		}, []string{"result"}),
	}
	gauge := func(name, help string, f func(st *scheduler) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 {
			s.mu.Lock()
			defer s.mu.Unlock()
			return f(s)
		})
	}
	m.reg.MustRegister(m.tokens, m.total, m.latency, m.rejected, m.requests,
		gauge("coconut_broker_queue_length", "Requests waiting for admission.", func(s *scheduler) float64 { return float64(s.queued) }),
		gauge("coconut_broker_in_flight", "Requests running on the backend.", func(s *scheduler) float64 { return float64(s.inflight) }),
		gauge("coconut_broker_context_tokens_in_flight", "Prompt + max_tokens of the requests in flight.", func(s *scheduler) float64 { return float64(s.ctxUsed) }),
		gauge("coconut_broker_blocked_agents", "Agents waiting for their token or KV budget (Inference-blocked).", func(s *scheduler) float64 {
			n := 0
			for _, t := range s.tenants {
				if t.blocked {
					n++
				}
			}
			return float64(n)
		}),
	)
	for _, r := range []string{"denied", "budget", "busy", "bad_request", "unauthorized"} {
		m.rejected.WithLabelValues(r)
	}
	return m
}

func (m *metrics) tenant(t *tstate) {
	aid := strconv.FormatUint(t.aid, 10)
	t.metrics = tenantMetrics{m: m, aid: aid,
		in: m.tokens.WithLabelValues(aid, "in"), out: m.tokens.WithLabelValues(aid, "out")}
}

func (tm *tenantMetrics) add(in, out int64) {
	if tm.m == nil {
		return
	}
	tm.in.Add(float64(in))
	tm.out.Add(float64(out))
	tm.m.total.WithLabelValues("in").Add(float64(in))
	tm.m.total.WithLabelValues("out").Add(float64(out))
}

// drop removes the tenant's series once the grace period has passed. The
// tenant is gone from the scheduler by then and its AID is never reused,
// so nothing can add to the series in between.
func (tm *tenantMetrics) drop() {
	if tm.m == nil {
		return
	}
	m, aid := tm.m, tm.aid
	del := func() {
		m.tokens.DeleteLabelValues(aid, "in")
		m.tokens.DeleteLabelValues(aid, "out")
	}
	if m.grace < 0 {
		del()
		return
	}
	time.AfterFunc(m.grace, del)
}
