package loadgen

import (
	"fmt"
	"time"

	"github.com/coconut-os/coconut/internal/broker"
)

// simConfig is the simulated backend the bench runs: it emits exactly
// max_tokens (the workload alone decides output lengths) at the given
// per-token times.
func (b *bench) simConfig(prefill, decode time.Duration) broker.SimConfig {
	jitter := 0.1
	if prefill == 0 && decode == 0 {
		jitter = 0
	}
	return broker.SimConfig{Slots: b.cfg.Slots, PrefillPerToken: prefill, DecodePerToken: decode, Jitter: jitter,
		Output: "fixed", OutputMean: 4096, OutputMax: 4096}
}

// backend is the upstream at --url, or a simulated backend with the given
// timing (zero: no service time).
func (b *bench) backend(prefill, decode time.Duration) (broker.Backend, error) {
	if b.cfg.URL != "" {
		return broker.NewUpstream(b.cfg.URL, b.cfg.Key, b.cfg.Slots)
	}
	s, err := broker.NewSim(b.simConfig(prefill, decode))
	if err != nil {
		return nil, fmt.Errorf("simulated backend: %w", err)
	}
	return s, nil
}

// direct is the overhead's baseline: the upstream itself, or a simulated
// backend with no service time served alone on its own listener.
func (b *bench) direct() (Target, func(), error) {
	if b.cfg.URL != "" {
		return Target{BaseURL: b.cfg.URL, Key: b.cfg.Key, Model: b.cfg.Model, Client: b.client}, func() {}, nil
	}
	s, err := broker.NewSim(b.simConfig(0, 0))
	if err != nil {
		return Target{}, nil, fmt.Errorf("simulated backend: %w", err)
	}
	url, stop, err := serve(s)
	if err != nil {
		return Target{}, nil, err
	}
	return Target{BaseURL: url, Model: b.cfg.Model, Client: b.client}, stop, nil
}
