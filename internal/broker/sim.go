package broker

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// SimConfig shapes the simulated backend. Durations are used as given (zero
// means instant, for overhead measurements); other zero fields take the
// defaults named beside them. DefaultSimConfig is the broker's default.
type SimConfig struct {
	Slots           int           // concurrent requests served (default 8); more wait for a slot
	PrefillPerToken time.Duration // per input token, before the first output token
	DecodePerToken  time.Duration // per output token
	Jitter          float64       // each request's service time is scaled by 1±Jitter (uniform)
	// Output is the distribution of output lengths: "fixed" (OutputMean),
	// "uniform" (1..2×OutputMean), "exponential" (default) or "pareto"
	// (alpha 1.5: heavy-tailed, mean OutputMean). A request's max_tokens
	// caps the sampled length, its min_tokens raises it.
	Output     string
	OutputMean int64    // default 64
	OutputMax  int64    // cap on a sampled length (default 4096)
	Models     []string // model ids listed by /v1/models (default ["coconut-sim"]); any model name is served
}

// DefaultSimConfig is what the broker runs when no backend is configured.
func DefaultSimConfig() SimConfig {
	return SimConfig{Slots: 8, PrefillPerToken: 100 * time.Microsecond, DecodePerToken: 10 * time.Millisecond,
		Jitter: 0.1, Output: "exponential", OutputMean: 64, OutputMax: 4096}
}

// Sim is the embedded simulated backend: Slots requests at a time, service
// time = PrefillPerToken × input tokens + DecodePerToken × output tokens
// (scaled by jitter), one chunk per output token, usage at the end. It is a
// Backend for the broker and, through ServeHTTP, an OpenAI-compatible
// server of its own (the benchmark's direct baseline, the tests' upstream).
type Sim struct {
	c     SimConfig
	slots chan struct{}
}

// NewSim returns a simulated backend.
func NewSim(c SimConfig) (*Sim, error) {
	if c.Slots <= 0 {
		c.Slots = 8
	}
	if c.Output == "" {
		c.Output = "exponential"
	}
	switch c.Output {
	case "fixed", "uniform", "exponential", "pareto":
	default:
		return nil, fmt.Errorf("%w: sim output distribution %q (want fixed, uniform, exponential or pareto)", ErrBadRequest, c.Output)
	}
	if c.OutputMean <= 0 {
		c.OutputMean = 64
	}
	if c.OutputMax <= 0 {
		c.OutputMax = 4096
	}
	if c.Jitter < 0 || c.Jitter >= 1 || c.PrefillPerToken < 0 || c.DecodePerToken < 0 {
		return nil, fmt.Errorf("%w: sim jitter must be in [0,1) and durations non-negative", ErrBadRequest)
	}
	if len(c.Models) == 0 {
		c.Models = []string{"coconut-sim"}
	}
	return &Sim{c: c, slots: make(chan struct{}, c.Slots)}, nil
}

// sample draws an output length in [1, OutputMax].
func (s *Sim) sample() int64 {
	m := float64(s.c.OutputMean)
	var x float64
	switch s.c.Output {
	case "fixed":
		x = m
	case "uniform":
		x = 1 + rand.Float64()*(2*m-1)
	case "exponential":
		x = rand.ExpFloat64() * m
	case "pareto":
		const alpha = 1.5
		xm := m * (alpha - 1) / alpha
		x = xm / math.Pow(1-rand.Float64(), 1/alpha)
	}
	n := int64(math.Ceil(x))
	return min(max(n, 1), s.c.OutputMax)
}

// words are four bytes each, so the text of n tokens re-estimates to n.
var words = [...]string{"the ", "cat ", "sat ", "on  ", "a   ", "mat ", "and ", "ran "}

// Generate implements Backend.
func (s *Sim) Generate(ctx context.Context, r *Request, emit func(Chunk) error) (Result, error) {
	select {
	case s.slots <- struct{}{}:
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
	defer func() { <-s.slots }()

	scale := 1.0
	if s.c.Jitter > 0 {
		scale = 1 + s.c.Jitter*(2*rand.Float64()-1)
	}
	var timer *time.Timer
	pause := func(d time.Duration) error {
		if d <= 0 {
			return ctx.Err()
		}
		if timer == nil {
			timer = time.NewTimer(d)
		} else {
			timer.Reset(d)
		}
		select {
		case <-timer.C:
			return nil
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		}
	}
	if err := pause(time.Duration(float64(s.c.PrefillPerToken) * float64(r.PromptTokens) * scale)); err != nil {
		return Result{}, err
	}
	res := Result{HaveUsage: true, Finish: "stop"}
	res.Usage.PromptTokens = r.PromptTokens
	if r.Endpoint == EndpointEmbeddings {
		res.Embeddings = make([][]float32, r.Inputs)
		for i := range res.Embeddings {
			v := make([]float32, 8)
			for j := range v {
				v[j] = float32(math.Sin(float64(i*8+j) + float64(r.PromptTokens)))
			}
			res.Embeddings[i] = v
		}
		res.Usage.TotalTokens = r.PromptTokens
		return res, nil
	}
	n := s.sample()
	n = max(n, r.MinTokens)
	if n >= r.MaxTokens {
		n = r.MaxTokens
		res.Finish = "length"
	}
	step := time.Duration(float64(s.c.DecodePerToken) * scale)
	for i := int64(0); i < n; i++ {
		if err := pause(step); err != nil {
			res.Usage.CompletionTokens = i
			return res, err
		}
		if err := emit(Chunk{Text: words[i%int64(len(words))]}); err != nil {
			res.Usage.CompletionTokens = i
			return res, err
		}
	}
	res.Usage.CompletionTokens = n
	res.Usage.TotalTokens = r.PromptTokens + n
	return res, nil
}

// Models implements Backend.
func (s *Sim) Models(context.Context) ([]string, error) { return s.c.Models, nil }

// Close implements Backend.
func (s *Sim) Close() error { return nil }
