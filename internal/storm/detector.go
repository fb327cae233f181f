package storm

import "time"

// Detector counts one agent's denies in fixed windows. The zero value is
// ready. Not safe for concurrent use (the deny consumer owns it).
type Detector struct {
	start time.Time
	count uint64
	fired bool
}

// Storm is what a detector saw when a storm began in a window.
type Storm struct {
	Denies uint64        // denies counted in the window so far
	Over   time.Duration // since the window began
}

// Add counts n denies at now under p. It reports a storm the first time
// the window's count passes p.Rate × p.Window, once per window (a storm
// that lasts fires again in the next window: a throttle then pauses the
// agent again).
func (d *Detector) Add(n uint64, now time.Time, p Policy) (Storm, bool) {
	if p.Action == None || p.Rate <= 0 || p.Window <= 0 {
		return Storm{}, false
	}
	if d.start.IsZero() || now.Sub(d.start) >= p.Window || now.Before(d.start) {
		d.start, d.count, d.fired = now, 0, false
	}
	d.count += n
	if d.fired || float64(d.count) <= float64(p.Rate)*p.Window.Seconds() {
		return Storm{}, false
	}
	d.fired = true
	return Storm{Denies: d.count, Over: now.Sub(d.start)}, true
}
