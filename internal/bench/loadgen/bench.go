package loadgen

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coconut-os/coconut/internal/broker"
)

// TenantHeader carries the bench tenant's number from the bench's own
// client to the bench's own Identify hook. A daemon's broker never reads it.
const TenantHeader = "X-Coconut-Bench-Tenant"

// budgetTenant is the tenant number of the budget race.
const budgetTenant = 100

// BenchConfig is `coconut bench broker`'s flags. The zero value of a field
// takes the default named beside it (see withDefaults).
type BenchConfig struct {
	URL, Key, Model string // URL empty: the simulated backend; Model default "sim"
	Slots           int    // backend concurrency (8)
	// Headroom is the broker's Config.Headroom in the phases that have it
	// on (0: the broker's default).
	Headroom int
	// Simulated backend timing per token; the overhead and rps figures
	// use a sim with no service time whatever these say.
	Prefill, Decode time.Duration // 20µs, 3ms
	Phase           time.Duration // each fairness phase (10s)
	Warmup          time.Duration // not measured at the start of a phase (1s)
	Grace           time.Duration // for requests outstanding at a phase's end (15s)
	Flood           int           // the flooder's outstanding requests (32)
	LightRate       float64       // each light tenant's requests/s (8)
	OverheadN       int           // sequential requests each way for the overhead (2000)
	RPSClients      int           // concurrent closed-loop clients for rps (64)
	RPSTime         time.Duration // length of the rps run (3s)
	Seed            uint64
	Progress        io.Writer // one line per step (nil: silent)
}

func (c BenchConfig) withDefaults() BenchConfig {
	def := func(p *time.Duration, d time.Duration) {
		if *p == 0 {
			*p = d
		}
	}
	if c.Model == "" {
		c.Model = "sim"
	}
	if c.Slots == 0 {
		c.Slots = 8
	}
	def(&c.Prefill, 20*time.Microsecond)
	def(&c.Decode, 3*time.Millisecond)
	def(&c.Phase, 10*time.Second)
	def(&c.Warmup, time.Second)
	def(&c.Grace, 15*time.Second)
	def(&c.RPSTime, 3*time.Second)
	if c.Flood == 0 {
		c.Flood = 32
	}
	if c.LightRate == 0 {
		c.LightRate = 8
	}
	if c.OverheadN == 0 {
		c.OverheadN = 2000
	}
	if c.RPSClients == 0 {
		c.RPSClients = 64
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	return c
}

func (c BenchConfig) validate() error {
	switch {
	case c.Slots < 1 || c.Slots > 1024:
		return fmt.Errorf("%w: slots must be 1..1024", ErrConfig)
	case c.Headroom < 0 || c.Headroom >= c.Slots:
		return fmt.Errorf("%w: headroom must be 0 (default) .. slots-1", ErrConfig)
	case c.Prefill < 0 || c.Decode < 0:
		return fmt.Errorf("%w: prefill and decode must not be negative", ErrConfig)
	case c.Warmup < 0 || c.Warmup >= c.Phase:
		return fmt.Errorf("%w: need 0 <= warmup < phase", ErrConfig)
	case c.Flood < 1 || c.RPSClients < 1 || c.OverheadN < 1 || c.RPSTime <= 0:
		return fmt.Errorf("%w: flood, rps clients, overhead requests and rps time must be positive", ErrConfig)
	case !(c.LightRate > 0):
		return fmt.Errorf("%w: light rate must be positive", ErrConfig)
	}
	return nil
}

// Workload is the four tenants: the flooder first, then three light ones.
func (c BenchConfig) Workload(flood bool) []Tenant {
	var ts []Tenant
	if flood {
		ts = append(ts, Tenant{Name: "flooder", ID: 1, Weight: 100, Outstanding: c.Flood, PromptBytes: 2048,
			MaxTokens: Lengths{Min: 32, Max: 1024, Alpha: 1.2}, Stream: true})
	}
	for i := 0; i < 3; i++ {
		ts = append(ts, Tenant{Name: "light-" + string(rune('a'+i)), ID: 2 + i, Weight: 100, Rate: c.LightRate,
			PromptBytes: 256, MaxTokens: Lengths{Fixed: 16}, Stream: true})
	}
	return ts
}

// Phase is one fairness run.
type Phase struct {
	Policy   string  `json:"policy"`
	Flood    bool    `json:"flood"`
	Headroom bool    `json:"headroom"` // the per-tenant slot headroom was on
	Light    Figures `json:"light"`    // the light tenants pooled
	Summary
	result Result
}

// Figures are pooled latencies in milliseconds.
type Figures struct {
	TTFTP50 Figure `json:"ttft_p50_ms"`
	TTFTP99 Figure `json:"ttft_p99_ms"`
	E2EP50  Figure `json:"e2e_p50_ms"`
	E2EP99  Figure `json:"e2e_p99_ms"`
}

// Overhead compares the same sequential requests sent to the backend's
// handler directly and through the broker.
type Overhead struct {
	Requests  int    `json:"requests"`
	DirectP50 Figure `json:"direct_p50_ms"`
	DirectP99 Figure `json:"direct_p99_ms"`
	BrokerP50 Figure `json:"broker_p50_ms"`
	BrokerP99 Figure `json:"broker_p99_ms"`
	AddedP50  Figure `json:"added_p50_ms"`
	AddedP99  Figure `json:"added_p99_ms"` // broker p99 − direct p99
}

// Budget is the race of many concurrent requests against one budget.
type Budget struct {
	Requests int   `json:"requests"`
	Budget   int64 `json:"budget_tokens"`
	OK       int   `json:"ok"`
	Refused  int   `json:"refused_429"`
	Other    int   `json:"other_failures"`
	// Granted is the larger of the tokens the clients were served
	// (usage of every 200) and the tokens the broker counted.
	Granted   int64 `json:"granted_tokens"`
	Overshoot int64 `json:"overshoot_tokens"`
}

// BenchResult is everything `coconut bench broker` prints.
type BenchResult struct {
	Backend  string   `json:"backend"`
	Slots    int      `json:"slots"`
	Phases   []Phase  `json:"phases"`
	Overhead Overhead `json:"overhead"`
	RPS      float64  `json:"rps"`
	// RPSDirect is the same load on the backend's handler alone.
	RPSDirect float64            `json:"rps_direct"`
	Budget    Budget             `json:"budget"`
	Audited   int64              `json:"audit_rows_counted"`
	Headline  map[string]float64 `json:"headline"`
	Notes     []string           `json:"notes"`
}

// bench holds what every step shares.
type bench struct {
	cfg     BenchConfig
	client  *http.Client
	audited atomic.Int64
}

// Bench runs the whole benchmark.
func Bench(ctx context.Context, cfg BenchConfig) (BenchResult, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return BenchResult{}, err
	}
	b := &bench{cfg: cfg, client: NewClient(cfg.Flood + cfg.RPSClients + 128)}
	defer b.client.CloseIdleConnections()
	res := BenchResult{Backend: "simulated", Slots: cfg.Slots}
	if cfg.URL != "" {
		res.Backend = cfg.URL
	}
	type step struct {
		policy          string
		flood, headroom bool
	}
	for _, s := range []step{
		{broker.PolicyVTC, false, true}, {broker.PolicyVTC, true, true},
		{broker.PolicyFIFO, false, false}, {broker.PolicyFIFO, true, false},
		{broker.PolicyVTC, true, false},
	} {
		p, err := b.phase(ctx, s.policy, s.flood, s.headroom)
		if err != nil {
			return res, err
		}
		res.Phases = append(res.Phases, p)
	}
	var err error
	if res.Overhead, err = b.overhead(ctx); err != nil {
		return res, err
	}
	if res.RPS, res.RPSDirect, err = b.rps(ctx); err != nil {
		return res, err
	}
	if res.Budget, err = b.budget(ctx); err != nil {
		return res, err
	}
	res.Audited = b.audited.Load()
	find := func(policy string, flood, headroom bool) Phase {
		for _, p := range res.Phases {
			if p.Policy == policy && p.Flood == flood && p.Headroom == headroom {
				return p
			}
		}
		return Phase{}
	}
	ratio := func(a, b Figure) float64 { return float64(a) / float64(b) }
	vq, vf := find(broker.PolicyVTC, false, true), find(broker.PolicyVTC, true, true)
	fq, ff := find(broker.PolicyFIFO, false, false), find(broker.PolicyFIFO, true, false)
	vn := find(broker.PolicyVTC, true, false)
	res.Headline = map[string]float64{
		"p99_ratio":                 ratio(vf.Light.E2EP99, vq.Light.E2EP99),
		"fifo_p99_ratio":            ratio(ff.Light.E2EP99, fq.Light.E2EP99),
		"overhead_p99_ms":           float64(res.Overhead.AddedP99),
		"rps":                       res.RPS,
		"budget_overshoot_tokens":   float64(res.Budget.Overshoot),
		"no_headroom_p99_ratio":     ratio(vn.Light.E2EP99, vq.Light.E2EP99),
		"headroom_throughput_ratio": vf.TokensPerSec / vn.TokensPerSec,
	}
	res.Notes = []string{
		"tenants run in this process over real loopback HTTP; the bench's Identify maps a header of its own client to a tenant",
		"the Audit hook is a counter, not the audit chain: chain append cost is `coconut bench audit`'s",
		"p99 ratio = light tenants' pooled p99 end-to-end latency with the flooder / without it, same policy",
		"headroom = slots a tenant at its fair share may not take while others are active (Config.Headroom); FIFO never applies it",
		"backlogged = a request outstanding (client side); max service diff in tokens over intervals where two tenants are both backlogged",
	}
	for k, v := range res.Headline {
		if v != v || v > 1e300 || v < -1e300 {
			return res, fmt.Errorf("figure %s could not be measured (%v): no completed requests in a phase; lengthen --phase", k, v)
		}
	}
	return res, nil
}

// identify maps the bench's own header to a tenant. Every model is allowed;
// the budget tenant has a token limit.
func (b *bench) identify(budget int64) func(r *http.Request) (broker.Tenant, error) {
	all := func(string) bool { return true }
	return func(r *http.Request) (broker.Tenant, error) {
		id, err := strconv.Atoi(r.Header.Get(TenantHeader))
		if err != nil || id < 1 {
			return broker.Tenant{}, fmt.Errorf("%w: not a bench tenant", broker.ErrUnauthorized)
		}
		t := broker.Tenant{AID: uint64(id), Weight: 100, Models: all}
		if id == budgetTenant {
			t.TokenLimit = budget
		}
		return t, nil
	}
}

// serve runs h on a loopback listener until the returned stop is called;
// the URL it returns is the OpenAI base URL (with /v1).
func serve(h http.Handler) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); srv.Serve(ln) }()
	return "http://" + ln.Addr().String() + "/v1", func() { srv.Close(); wg.Wait() }, nil
}

// startBroker builds a broker over backend (nil: the configured one) and
// serves it.
func (b *bench) startBroker(cfg broker.Config, backend broker.Backend, budget int64) (*broker.Broker, Target, func(), error) {
	if backend == nil {
		var err error
		if backend, err = b.backend(b.cfg.Prefill, b.cfg.Decode); err != nil {
			return nil, Target{}, nil, err
		}
	}
	cfg.Slots, cfg.Backend = b.cfg.Slots, backend
	br, err := broker.New(cfg, broker.Hooks{
		Identify: b.identify(budget),
		Audit:    func(context.Context, broker.Call) error { b.audited.Add(1); return nil },
	})
	if err != nil {
		backend.Close()
		return nil, Target{}, nil, fmt.Errorf("broker: %w", err)
	}
	url, stop, err := serve(br.Handler())
	if err != nil {
		br.Close()
		return nil, Target{}, nil, err
	}
	t := Target{BaseURL: url, Model: b.cfg.Model, TenantHeader: TenantHeader, Client: b.client}
	return br, t, func() { stop(); br.Close() }, nil
}

func (b *bench) phase(ctx context.Context, policy string, flood, headroom bool) (Phase, error) {
	fmt.Fprintf(b.cfg.Progress, "phase: %s, flooder %v, headroom %v (%v)\n", policy, flood, headroom, b.cfg.Phase)
	cfg := broker.Config{Policy: policy, Headroom: b.cfg.Headroom}
	if !headroom {
		cfg.Headroom = -1
	}
	_, t, stop, err := b.startBroker(cfg, nil, 0)
	if err != nil {
		return Phase{}, err
	}
	defer stop()
	tenants := b.cfg.Workload(flood)
	res, err := Run{Target: t, Tenants: tenants, Duration: b.cfg.Phase, Warmup: b.cfg.Warmup, Grace: b.cfg.Grace, Seed: b.cfg.Seed}.Do(ctx)
	if err != nil {
		return Phase{}, err
	}
	var light []int
	for i, tn := range tenants {
		if tn.Outstanding == 0 {
			light = append(light, i)
		}
	}
	return Phase{
		Policy: policy, Flood: flood, Headroom: headroom, Summary: Summarize(res), result: res,
		Light: Figures{
			TTFTP50: Figure(Pooled(res, light, 50, false)), TTFTP99: Figure(Pooled(res, light, 99, false)),
			E2EP50: Figure(Pooled(res, light, 50, true)), E2EP99: Figure(Pooled(res, light, 99, true)),
		},
	}, nil
}

// overhead sends the same small requests alternately to the backend's own
// handler and through the broker, one at a time, with no service time.
func (b *bench) overhead(ctx context.Context) (Overhead, error) {
	fmt.Fprintf(b.cfg.Progress, "overhead: %d sequential requests each way\n", b.cfg.OverheadN)
	direct, stopDirect, err := b.direct()
	if err != nil {
		return Overhead{}, err
	}
	defer stopDirect()
	be, err := b.backend(0, 0)
	if err != nil {
		return Overhead{}, err
	}
	_, via, stop, err := b.startBroker(broker.Config{}, be, 0)
	if err != nil {
		return Overhead{}, err
	}
	defer stop()
	prompt := "measure the broker's own cost per request, not the model's"
	var d, v []float64
	t0 := time.Now()
	// Warm both paths' connections and code first.
	for i := 0; i < 50; i++ {
		direct.Do(ctx, t0, 2, prompt, 8, false)
		via.Do(ctx, t0, 2, prompt, 8, false)
	}
	for i := 0; i < b.cfg.OverheadN; i++ {
		for k, tg := range []Target{direct, via} {
			// Alternate which goes first so that neither always follows
			// the other's garbage.
			if i%2 == 1 {
				tg = []Target{via, direct}[k]
			}
			r := tg.Do(ctx, t0, 2, prompt, 8, false)
			if !r.OK() {
				return Overhead{}, fmt.Errorf("overhead request to %s: %s", tg.BaseURL, r.Err)
			}
			if tg.BaseURL == direct.BaseURL {
				d = append(d, ms(r.End-r.Start))
			} else {
				v = append(v, ms(r.End-r.Start))
			}
		}
	}
	o := Overhead{Requests: b.cfg.OverheadN,
		DirectP50: Figure(Percentile(d, 50)), DirectP99: Figure(Percentile(d, 99)),
		BrokerP50: Figure(Percentile(v, 50)), BrokerP99: Figure(Percentile(v, 99))}
	o.AddedP50, o.AddedP99 = o.BrokerP50-o.DirectP50, o.BrokerP99-o.DirectP99
	return o, nil
}

// rps is completed requests per second through the broker, closed-loop
// clients, no service time; and the same load on the backend's own
// handler, the ceiling of this machine's HTTP stack.
func (b *bench) rps(ctx context.Context) (via, direct float64, err error) {
	fmt.Fprintf(b.cfg.Progress, "rps: %d clients for %v, direct and through the broker\n", b.cfg.RPSClients, b.cfg.RPSTime)
	dt, stopDirect, err := b.direct()
	if err != nil {
		return 0, 0, err
	}
	defer stopDirect()
	be, err := b.backend(0, 0)
	if err != nil {
		return 0, 0, err
	}
	_, t, stop, err := b.startBroker(broker.Config{}, be, 0)
	if err != nil {
		return 0, 0, err
	}
	defer stop()
	if direct, err = b.closedLoop(ctx, dt); err != nil {
		return 0, 0, err
	}
	via, err = b.closedLoop(ctx, t)
	return via, direct, err
}

func (b *bench) closedLoop(ctx context.Context, t Target) (float64, error) {
	warm := b.cfg.RPSTime / 5
	res, err := Run{Target: t, Tenants: []Tenant{{Name: "rps", ID: 2, Weight: 100, Outstanding: b.cfg.RPSClients,
		PromptBytes: 16, MaxTokens: Lengths{Fixed: 1}}}, Duration: b.cfg.RPSTime + warm, Warmup: warm, Grace: 10 * time.Second, Seed: b.cfg.Seed}.Do(ctx)
	if err != nil {
		return 0, err
	}
	s := Summarize(res)
	if s.Tenants[0].Failed > 0 {
		return 0, fmt.Errorf("rps against %s: %d requests failed", t.BaseURL, s.Tenants[0].Failed)
	}
	return s.RPS, nil
}

// budget races 64 concurrent requests from one tenant against a budget
// that allows 10 of them: nine settled calls (prompt + max_tokens each)
// and the tenth one's reservation, which the broker takes from the whole
// body (larger than what the call settles at).
func (b *bench) budget(ctx context.Context) (Budget, error) {
	const n, allowed, promptBytes, maxTokens = 64, 10, 256, 48
	prompt := strings.Repeat("x", promptBytes)
	per := int64((promptBytes+3)/4 + maxTokens)
	var reserve int64
	for _, stream := range []bool{false, true} {
		r, err := broker.DecodeRequest(broker.EndpointChat, body(b.cfg.Model, prompt, maxTokens, stream), maxTokens, 0)
		if err != nil {
			return Budget{}, fmt.Errorf("budget race: %w", err)
		}
		reserve = max(reserve, r.Need())
	}
	bud := Budget{Requests: n, Budget: (allowed-1)*per + reserve}
	fmt.Fprintf(b.cfg.Progress, "budget: %d concurrent requests, budget %d tokens\n", n, bud.Budget)
	br, t, stop, err := b.startBroker(broker.Config{}, nil, bud.Budget)
	if err != nil {
		return bud, err
	}
	defer stop()
	recs := make([]Record, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	t0 := time.Now()
	for i := range recs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			recs[i] = t.Do(ctx, t0, budgetTenant, prompt, maxTokens, i%2 == 0)
		}()
	}
	close(start)
	wg.Wait()
	var served int64
	for _, r := range recs {
		switch {
		case r.OK():
			bud.OK++
			served += r.TokensIn + r.TokensOut
		case r.Status == http.StatusTooManyRequests:
			bud.Refused++
		default:
			bud.Other++
		}
	}
	var counted int64
	for _, a := range br.Stats().Agents {
		if a.AID == budgetTenant {
			counted = a.TokensIn + a.TokensOut
		}
	}
	bud.Granted = max(served, counted)
	bud.Overshoot = max(0, bud.Granted-bud.Budget)
	if bud.Other > 0 {
		return bud, fmt.Errorf("budget race: %d requests failed other than with 429", bud.Other)
	}
	return bud, nil
}
