package config

import (
	"fmt"
	"net/url"
	"path/filepath"
	"time"
)

// Broker is the [broker] table: how the inference broker schedules and
// where it sends admitted requests. Zero values take the broker's
// defaults; without upstream_url the embedded simulated backend serves.
type Broker struct {
	Policy           string `toml:"policy"`             // "vtc" (default) or "fifo"
	Slots            int    `toml:"slots"`              // backend concurrency (default 8)
	ContextTokens    int64  `toml:"context_tokens"`     // backend context pool (default 65536)
	OverBudget       string `toml:"over_budget"`        // "wait" (default) or "reject"
	DefaultMaxTokens int64  `toml:"default_max_tokens"` // when a request names none (default 256)
	KVBytesPerToken  int64  `toml:"kv_bytes_per_token"` // default 131072
	Headroom         int    `toml:"headroom"`           // slots kept for light tenants (default slots/2; -1 off)
	UpstreamURL      string `toml:"upstream_url"`       // an OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1
	UpstreamKeyFile  string `toml:"upstream_key_file"`  // a file holding the upstream's API key (never the key inline)
	Sim              Sim    `toml:"sim"`                // [broker.sim]: the simulated backend's timings
	// PricePer1KTokens, when set, lets the Center show token spend as a
	// cost (in the user's currency; the number is only multiplied).
	PricePer1KTokens float64 `toml:"price_per_1k_tokens"`
	// UserTokenBudget is each user's lifetime token budget across all
	// their agents (the server profile's per-user budget); 0: none.
	UserTokenBudget int64 `toml:"user_token_budget"`
	// MetricsGrace is how long an ended agent's series stay on /metrics
	// (a Go duration, default "5m"; "0s": dropped at once).
	MetricsGrace string `toml:"metrics_grace"`
}

// MetricsGraceDuration parses MetricsGrace: 0 when unset (the broker's
// default), negative for "0s" (drop at once, the broker's spelling).
func (b Broker) MetricsGraceDuration() (time.Duration, error) {
	if b.MetricsGrace == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(b.MetricsGrace)
	if err != nil {
		return 0, fmt.Errorf("metrics_grace %q: %w", b.MetricsGrace, err)
	}
	if d < 0 {
		return 0, fmt.Errorf("metrics_grace %q: must not be negative", b.MetricsGrace)
	}
	if d == 0 {
		return -1, nil
	}
	return d, nil
}

// Sim is [broker.sim]: the embedded simulated backend. Zero values take
// its defaults (internal/broker.DefaultSimConfig).
type Sim struct {
	Slots      int     `toml:"slots"`       // its concurrency (default: the broker's slots)
	PrefillUS  float64 `toml:"prefill_us"`  // µs per input token (default 100)
	DecodeUS   float64 `toml:"decode_us"`   // µs per output token (default 10000)
	Jitter     float64 `toml:"jitter"`      // service time scaled by 1±jitter, 0..1 (default 0.1)
	Output     string  `toml:"output"`      // output lengths: fixed, uniform, exponential (default) or pareto
	OutputMean int64   `toml:"output_mean"` // mean output tokens (default 64)
	OutputMax  int64   `toml:"output_max"`  // longest output (default 4096)
	Model      string  `toml:"model"`       // the model id /v1/models lists (default coconut-sim; any name is served)
}

// validate refuses what the broker could only misread.
func (b Broker) validate() error {
	switch b.Policy {
	case "", "vtc", "fifo":
	default:
		return fmt.Errorf("policy %q: must be vtc or fifo", b.Policy)
	}
	switch b.OverBudget {
	case "", "wait", "reject":
	default:
		return fmt.Errorf("over_budget %q: must be wait or reject", b.OverBudget)
	}
	for _, f := range []struct {
		name string
		v    int64
	}{{"slots", int64(b.Slots)}, {"context_tokens", b.ContextTokens}, {"default_max_tokens", b.DefaultMaxTokens},
		{"kv_bytes_per_token", b.KVBytesPerToken}, {"user_token_budget", b.UserTokenBudget}, {"sim.slots", int64(b.Sim.Slots)}, {"sim.output_mean", b.Sim.OutputMean}, {"sim.output_max", b.Sim.OutputMax}} {
		if f.v < 0 {
			return fmt.Errorf("%s %d: must not be negative", f.name, f.v)
		}
	}
	if b.PricePer1KTokens < 0 {
		return fmt.Errorf("price_per_1k_tokens %v: must not be negative", b.PricePer1KTokens)
	}
	if _, err := b.MetricsGraceDuration(); err != nil {
		return err
	}
	if b.Headroom < -1 {
		return fmt.Errorf("headroom %d: use -1 to turn it off", b.Headroom)
	}
	if b.Sim.PrefillUS < 0 || b.Sim.DecodeUS < 0 || b.Sim.Jitter < 0 || b.Sim.Jitter >= 1 {
		return fmt.Errorf("sim: prefill_us and decode_us must not be negative, jitter must be in [0, 1)")
	}
	switch b.Sim.Output {
	case "", "fixed", "uniform", "exponential", "pareto":
	default:
		return fmt.Errorf("sim.output %q: must be fixed, uniform, exponential or pareto", b.Sim.Output)
	}
	if b.UpstreamURL != "" {
		u, err := url.Parse(b.UpstreamURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
			return fmt.Errorf("upstream_url %q: want http(s)://host[:port][/path], without credentials (use upstream_key_file)", b.UpstreamURL)
		}
	}
	if b.UpstreamKeyFile != "" {
		if b.UpstreamURL == "" {
			return fmt.Errorf("upstream_key_file without upstream_url")
		}
		if !filepath.IsAbs(b.UpstreamKeyFile) {
			return fmt.Errorf("upstream_key_file %q: must be an absolute path", b.UpstreamKeyFile)
		}
	}
	return nil
}
