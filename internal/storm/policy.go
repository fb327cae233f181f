package storm

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Action is what is done to an agent in a deny storm.
type Action string

// The actions.
const (
	None       Action = "none"       // record nothing, do nothing
	Throttle   Action = "throttle"   // freeze the agent for Pause, again while the storm lasts
	Quarantine Action = "quarantine" // freeze it (state Quarantined) until released
	Kill       Action = "kill"       // kill it (state Terminated-revoked)
)

// Policy is an agent's `on_deny_storm`: a storm is more than Rate denies a
// second over one Window.
type Policy struct {
	Action Action        `json:"action,omitempty"`
	Rate   int           `json:"rate,omitempty"`   // denies a second
	Window time.Duration `json:"window,omitempty"` // the span they are counted over
}

// Default is the policy of an agent that names none, on a host whose
// config names none: throttle past 1,000 denies a second over 2 s. A
// looping agent's supervised denies are paced at about ten a second by
// their rows (internal/agent/aggregate.go), so only floods pass it:
// network guard denies, which the kernel answers at once, or many
// threads at once.
var Default = Policy{Action: Throttle, Rate: 1000, Window: 2 * time.Second}

// Pause is how long a throttled agent stays frozen each time.
const Pause = time.Second

// Limits on what a policy may say.
const (
	MaxRate   = 10_000_000
	MinWindow = 100 * time.Millisecond
	MaxWindow = time.Hour
)

// ParseAction reads an action name.
func ParseAction(s string) (Action, error) {
	switch a := Action(s); a {
	case None, Throttle, Quarantine, Kill:
		return a, nil
	}
	return "", fmt.Errorf("on_deny_storm: %q is not an action: want throttle, quarantine, kill or none", s)
}

// Parse reads the compact form a flag or a manifest scalar gives:
// "ACTION", or "ACTION,rate=N,window=D" (any of the two keys).
func Parse(s string) (Policy, error) {
	parts := strings.Split(s, ",")
	a, err := ParseAction(strings.TrimSpace(parts[0]))
	if err != nil {
		return Policy{}, err
	}
	p := Policy{Action: a}
	for _, kv := range parts[1:] {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return Policy{}, fmt.Errorf("on_deny_storm: %q: want KEY=VALUE (rate=N, window=D)", kv)
		}
		switch k {
		case "rate":
			n, err := strconv.Atoi(v)
			if err != nil {
				return Policy{}, fmt.Errorf("on_deny_storm: rate %q: want a whole number of denies a second", v)
			}
			p.Rate = n
		case "window":
			d, err := time.ParseDuration(v)
			if err != nil {
				return Policy{}, fmt.Errorf("on_deny_storm: window %q: want a duration such as 2s", v)
			}
			p.Window = d
		default:
			return Policy{}, fmt.Errorf("on_deny_storm: unknown key %q (want rate or window)", k)
		}
	}
	return p, p.Check()
}

// Check reports a field out of range; zero fields are "not set".
func (p Policy) Check() error {
	if p.Action != "" {
		if _, err := ParseAction(string(p.Action)); err != nil {
			return err
		}
	}
	if p.Rate < 0 || p.Rate > MaxRate {
		return fmt.Errorf("on_deny_storm: rate %d: want 1..%d denies a second", p.Rate, MaxRate)
	}
	if p.Window != 0 && (p.Window < MinWindow || p.Window > MaxWindow) {
		return fmt.Errorf("on_deny_storm: window %v: want %v..%v", p.Window, MinWindow, MaxWindow)
	}
	return nil
}

// Or fills p's unset fields from d.
func (p Policy) Or(d Policy) Policy {
	if p.Action == "" {
		p.Action = d.Action
	}
	if p.Rate == 0 {
		p.Rate = d.Rate
	}
	if p.Window == 0 {
		p.Window = d.Window
	}
	return p
}

// String is the compact form Parse reads.
func (p Policy) String() string {
	return fmt.Sprintf("%s,rate=%d,window=%v", p.Action, p.Rate, p.Window)
}
