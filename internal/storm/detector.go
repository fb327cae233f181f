package storm

import "time"

// Detector counts one agent's denies in fixed windows. The zero value is
// ready. Not safe for concurrent use (the deny consumer owns it).
type Detector struct {
	start time.Time
	count uint64
}

// Storm is what a detector saw when a storm began in a window.
type Storm struct {
	Denies uint64        // denies counted in the window so far
	Over   time.Duration // since the window began
}

// Add counts n denies at now under p. It reports a storm when the
// window's count passes p.Rate × p.Window, and then starts a new window:
// a storm that lasts fires again as soon as it passes the rate again (a
// throttled flood is paused again right after its pause, not let run
// free to the end of its window).
func (d *Detector) Add(n uint64, now time.Time, p Policy) (Storm, bool) {
	if p.Action == None || p.Rate <= 0 || p.Window <= 0 {
		return Storm{}, false
	}
	if d.start.IsZero() || now.Sub(d.start) >= p.Window || now.Before(d.start) {
		d.start, d.count = now, 0
	}
	d.count += n
	if float64(d.count) <= float64(p.Rate)*p.Window.Seconds() {
		return Storm{}, false
	}
	s := Storm{Denies: d.count, Over: now.Sub(d.start)}
	d.start, d.count = now, 0
	return s, true
}
