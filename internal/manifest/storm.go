package manifest

import (
	"time"

	"github.com/coconut-os/coconut/internal/storm"
	"go.yaml.in/yaml/v3"
)

// stormPolicy decodes an agent's on_deny_storm (issue 19): an action name
// (`on_deny_storm: quarantine`) or a mapping of action, rate (denies a
// second) and window (a duration such as 2s). Unset fields take the
// host's default when the agent is spawned.
func (d *decoder) stormPolicy(v val) storm.Policy {
	if v.n.Kind == yaml.ScalarNode {
		s, ok := d.str(v)
		if !ok {
			return storm.Policy{}
		}
		a, err := storm.ParseAction(s)
		if err != nil {
			d.errorf(v.line, v.field, "must be throttle, quarantine, kill or none, got %q", s)
		}
		return storm.Policy{Action: a}
	}
	var p storm.Policy
	entries, _ := d.mapping(v, []string{"action", "rate", "window"})
	for _, e := range entries {
		switch e.key {
		case "action":
			if s, ok := d.str(e.v); ok {
				a, err := storm.ParseAction(s)
				if err != nil {
					d.errorf(e.v.line, e.v.field, "must be throttle, quarantine, kill or none, got %q", s)
				}
				p.Action = a
			}
		case "rate":
			n, _ := d.integer(e.v, 1, storm.MaxRate)
			p.Rate = int(n)
		case "window":
			if s, ok := d.str(e.v); ok {
				w, err := time.ParseDuration(s)
				if err != nil || w < storm.MinWindow || w > storm.MaxWindow {
					d.errorf(e.v.line, e.v.field, "must be a duration from %v to %v, got %q", storm.MinWindow, storm.MaxWindow, s)
					continue
				}
				p.Window = w
			}
		}
	}
	return p
}
