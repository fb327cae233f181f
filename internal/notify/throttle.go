package notify

import (
	"time"

	"github.com/coconut-os/coconut/api"
)

// throttle decides, per agent, when a deny becomes a notification: the
// first at once, the ones after it collected and summarised once the
// period since the agent's last notification has passed. A period of 0
// shows every deny.
type throttle struct {
	period time.Duration
	agents map[uint64]*agentDenies
}

// agentDenies is one agent's notification state.
type agentDenies struct {
	shownAt time.Time  // when its last notification was posted
	pending []uint64   // seqs of deny rows not yet in a notification
	denies  uint64     // the denies those rows stand for (aggregate rows count many)
	latest  api.Record // the newest of them
	notice  uint32     // the id of its last notification, to replace it
}

func newThrottle(period time.Duration) *throttle {
	return &throttle{period: period, agents: map[uint64]*agentDenies{}}
}

// note is a notification to post: the denies it covers (their seqs) and
// the newest of them.
type note struct {
	aid    uint64
	seqs   []uint64
	denies uint64 // the denies the rows stand for: ≥ len(seqs)
	latest api.Record
}

// add takes a deny; it answers the note to post now, if any.
func (t *throttle) add(now time.Time, r api.Record) *note {
	a := t.agents[r.AID]
	if a == nil {
		a = &agentDenies{}
		t.agents[r.AID] = a
	}
	a.pending = append(a.pending, r.Seq)
	a.denies += r.DenyCount()
	a.latest = r
	if len(a.pending) == 1 && (a.shownAt.IsZero() || now.Sub(a.shownAt) >= t.period) {
		return t.take(now, r.AID, a)
	}
	return nil
}

// due answers the summaries whose period has passed.
func (t *throttle) due(now time.Time) []*note {
	var out []*note
	for aid, a := range t.agents {
		if len(a.pending) > 0 && now.Sub(a.shownAt) >= t.period {
			out = append(out, t.take(now, aid, a))
		}
	}
	return out
}

// next is when the earliest pending summary falls due (zero: none pending).
func (t *throttle) next() time.Time {
	var at time.Time
	for _, a := range t.agents {
		if len(a.pending) == 0 {
			continue
		}
		if d := a.shownAt.Add(t.period); at.IsZero() || d.Before(at) {
			at = d
		}
	}
	return at
}

func (t *throttle) take(now time.Time, aid uint64, a *agentDenies) *note {
	n := &note{aid: aid, seqs: a.pending, denies: a.denies, latest: a.latest}
	a.pending, a.denies, a.shownAt = nil, 0, now
	return n
}

// lowestPending is the smallest seq not yet in a notification (0: none).
func (t *throttle) lowestPending() uint64 {
	var low uint64
	for _, a := range t.agents {
		if len(a.pending) > 0 && (low == 0 || a.pending[0] < low) {
			low = a.pending[0]
		}
	}
	return low
}

// putBack returns a note that could not be posted: its denies are pending
// again, due at retry.
func (t *throttle) putBack(n *note, retry time.Time) {
	a := t.agents[n.aid]
	a.shownAt = retry.Add(-t.period)
	a.pending = append(n.seqs, a.pending...)
	a.denies += n.denies
	if a.latest.Seq < n.latest.Seq {
		a.latest = n.latest
	}
}
