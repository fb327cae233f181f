package loadgen

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// Lengths draws a request's max_tokens.
type Lengths struct {
	// Fixed, when positive, is every request's length.
	Fixed int
	// Otherwise a Pareto distribution with scale Min and shape Alpha,
	// capped at Max: most requests short, a few very long — what a
	// runaway agent's outputs look like.
	Min, Max int
	Alpha    float64
}

func (l Lengths) validate() error {
	if l.Fixed > 0 {
		return nil
	}
	if l.Min < 1 || l.Max < l.Min || !(l.Alpha > 0) {
		return fmt.Errorf("%w: lengths need fixed > 0 or 1 <= min <= max and alpha > 0", ErrConfig)
	}
	return nil
}

// Draw returns one length from r.
func (l Lengths) Draw(r *rand.Rand) int {
	if l.Fixed > 0 {
		return l.Fixed
	}
	u := 1 - r.Float64() // (0, 1]: no division by zero
	x := float64(l.Min) / math.Pow(u, 1/l.Alpha)
	return int(min(x, float64(l.Max)))
}

// Tenant is one simulated agent's workload.
type Tenant struct {
	Name   string
	ID     int // what the bench's Identify maps to an AID
	Weight int
	// Outstanding > 0 makes a closed loop with that many requests always
	// in flight (the flooder); otherwise Rate requests per second arrive
	// as a Poisson process, each sent at once whatever is outstanding.
	Outstanding int
	Rate        float64
	PromptBytes int // message content size; the broker estimates ceil(bytes/4) tokens
	MaxTokens   Lengths
	Stream      bool
}

func (t Tenant) validate() error {
	if t.Outstanding <= 0 && !(t.Rate > 0) {
		return fmt.Errorf("%w: tenant %s: needs outstanding > 0 or rate > 0", ErrConfig, t.Name)
	}
	if t.PromptBytes < 1 {
		return fmt.Errorf("%w: tenant %s: prompt must be at least one byte", ErrConfig, t.Name)
	}
	if err := t.MaxTokens.validate(); err != nil {
		return fmt.Errorf("tenant %s: %w", t.Name, err)
	}
	return nil
}

// nextGap is the wait before the next Poisson arrival.
func (t Tenant) nextGap(r *rand.Rand) time.Duration {
	return time.Duration(r.ExpFloat64() / t.Rate * float64(time.Second))
}
