package notify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/coconut-os/coconut/api"
	"github.com/coconut-os/coconut/client"
)

// DefaultPeriod is how often, at most, one agent's denies are summarised.
const DefaultPeriod = time.Minute

// Options configure Run.
type Options struct {
	Client    *client.Client
	Socket    string        // the daemon's socket, for the Center login link
	StatePath string        // see StatePath
	Period    time.Duration // DefaultPeriod when 0; negative shows every deny
	Home      string        // shortened to ~ in the notification's text
	Log       io.Writer     // one line per connection change and action
	// Open opens a URL in the browser; openURL when nil.
	Open func(url string) error
}

// notifier is one running `coconut notify`.
type notifier struct {
	o       Options
	d       *desktop
	th      *throttle
	st      state
	read    uint64            // the last seq read from the stream
	names   map[uint64]string // agent names, looked up once
	notices map[uint32]notice // our notifications on screen, by id
	byAgent map[uint64]uint32 // an agent's notification on screen
	owner   string            // the notification server's unique bus name
}

// notice is what a notification's actions act on.
type notice struct {
	aid, seq uint64
	name     string
}

// Run follows the event stream until ctx ends. It reconnects when the
// daemon goes away and resumes after the last deny shown.
func Run(ctx context.Context, o Options) error {
	if o.Period == 0 {
		o.Period = DefaultPeriod
	}
	if o.Open == nil {
		o.Open = openURL
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	unlock, err := lockState(o.StatePath)
	if err != nil {
		return err
	}
	defer unlock()
	st, ok, err := loadState(o.StatePath)
	if err != nil {
		return err
	}
	d, err := openDesktop()
	if err != nil {
		return err
	}
	defer d.Close()
	n := &notifier{o: o, d: d, th: newThrottle(max(o.Period, 0)), st: st, names: map[uint64]string{},
		notices: map[uint32]notice{}, byAgent: map[uint64]uint32{}}
	if !ok {
		// The first run shows what happens from now on, not the history.
		head, err := n.chainHead(ctx)
		if err != nil {
			return nil // only ctx ends the wait
		}
		n.st.Seq = head
		if err := n.st.save(o.StatePath); err != nil {
			return fmt.Errorf("save %s: %w", o.StatePath, err)
		}
	}
	n.read = n.st.Seq
	rows := make(chan api.Record, 256)
	go n.follow(ctx, n.st.Seq, rows)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		timer.Reset(n.untilDue())
		select {
		case <-ctx.Done():
			return nil
		case r := <-rows:
			n.take(ctx, r)
		case <-timer.C:
			for _, due := range n.th.due(time.Now()) {
				n.show(ctx, due)
			}
		case s, ok := <-d.signals:
			if !ok {
				return fmt.Errorf("the session bus connection closed")
			}
			switch ev := d.event(s).(type) {
			case invoked:
				if n.fromServer(s) {
					n.act(ctx, ev)
				}
			case closedNote:
				if nt, ok := n.notices[ev.id]; ok {
					delete(n.notices, ev.id)
					if n.byAgent[nt.aid] == ev.id {
						delete(n.byAgent, nt.aid)
					}
				}
			}
		}
	}
}

// chainHead asks coconutd for the chain's head, waiting for the daemon:
// a desktop session may start before it does.
func (n *notifier) chainHead(ctx context.Context) (uint64, error) {
	backoff := 100 * time.Millisecond
	for logged := false; ; {
		doc, err := n.o.Client.Doctor(ctx)
		if err == nil {
			return doc.ChainHead, nil
		}
		if !logged {
			fmt.Fprintf(n.o.Log, "coconut notify: waiting for coconutd: %v\n", err)
			logged = true
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (n *notifier) untilDue() time.Duration {
	at := n.th.next()
	if at.IsZero() {
		return time.Hour
	}
	return max(time.Until(at), time.Millisecond)
}

// follow reads the stream of denies into rows, reconnecting with a backoff
// after the last row it read, until ctx ends.
func (n *notifier) follow(ctx context.Context, since uint64, rows chan<- api.Record) {
	backoff := 100 * time.Millisecond
	connected := true
	for ctx.Err() == nil {
		st, err := n.o.Client.Events(ctx, since, client.EventFilter{Result: "deny"})
		if err == nil {
			if !connected {
				fmt.Fprintf(n.o.Log, "coconut notify: following coconutd again after seq %d\n", since)
			}
			connected, backoff = true, 100*time.Millisecond
			for st.Next() {
				select {
				case rows <- st.Record():
				case <-ctx.Done():
				}
			}
			since = st.Last
			err = st.Err()
			st.Close()
		}
		if ctx.Err() != nil {
			return
		}
		if connected {
			fmt.Fprintf(n.o.Log, "coconut notify: lost coconutd (%v); retrying\n", err)
			connected = false
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// take handles one deny from the stream.
func (n *notifier) take(ctx context.Context, r api.Record) {
	n.read = max(n.read, r.Seq)
	if n.st.shown(r.AID, r.Seq) {
		return // shown before a restart
	}
	if nt := n.th.add(time.Now(), r); nt != nil {
		n.show(ctx, nt)
	}
}

// show posts a note (replacing the agent's notification still on screen)
// and persists that its denies were shown.
func (n *notifier) show(ctx context.Context, nt *note) {
	name := n.name(ctx, nt.aid)
	id, err := n.d.post(n.byAgent[nt.aid], nt, summary(name, nt), body(nt, n.o.Home))
	if err != nil {
		// No notification server: keep the denies pending and try again
		// at the next one rather than lose them.
		fmt.Fprintf(n.o.Log, "coconut notify: %v\n", err)
		n.th.putBack(nt, time.Now().Add(5*time.Second))
		return
	}
	if old, ok := n.byAgent[nt.aid]; ok && old != id {
		delete(n.notices, old)
	}
	n.byAgent[nt.aid] = id
	n.notices[id] = notice{aid: nt.aid, seq: nt.latest.Seq, name: name}
	n.st.record(nt, n.read, n.th.lowestPending())
	if err := n.st.save(n.o.StatePath); err != nil {
		fmt.Fprintf(n.o.Log, "coconut notify: save %s: %v\n", n.o.StatePath, err)
	}
}

func (n *notifier) name(ctx context.Context, aid uint64) string {
	if s, ok := n.names[aid]; ok {
		return s
	}
	if aid == 0 {
		return "coconutd"
	}
	a, err := n.o.Client.Agent(ctx, aid)
	if err != nil {
		return "" // not cached: the next deny asks again
	}
	n.names[aid] = a.Name
	return a.Name
}

// fromServer checks that a signal comes from the notification server, not
// from another program on the bus pretending to be it.
func (n *notifier) fromServer(s *dbus.Signal) bool {
	if n.owner == "" || n.owner != s.Sender {
		var owner string
		if err := n.d.conn.BusObject().Call("org.freedesktop.DBus.GetNameOwner", 0, busName).Store(&owner); err != nil {
			return false
		}
		n.owner = owner
	}
	return s.Sender == n.owner
}

// act carries out an action the user chose on one of our notifications.
func (n *notifier) act(ctx context.Context, ev invoked) {
	nt, ok := n.notices[ev.id]
	if !ok {
		return // another program's notification
	}
	who := fmt.Sprintf("%s (AID %d)", nt.name, nt.aid)
	switch ev.action {
	case actReview:
		u, err := reviewLink(ctx, n.o.Socket, nt.seq)
		if errors.Is(err, errNoCenter) {
			msg := fmt.Sprintf("This coconutd serves no Center, so the review page cannot open. See the row with: coconut audit query --aid %d --json (row %d).", nt.aid, nt.seq)
			fmt.Fprintf(n.o.Log, "coconut notify: review row %d: %v. %s\n", nt.seq, err, msg)
			n.d.say("Coconut Center is not available", msg)
			return
		}
		if err == nil {
			err = n.o.Open(u)
		}
		if err != nil {
			fmt.Fprintf(n.o.Log, "coconut notify: review row %d: %v\n", nt.seq, err)
			n.d.say("Could not open the review page", err.Error())
			return
		}
		fmt.Fprintf(n.o.Log, "coconut notify: opened the review page of row %d\n", nt.seq)
	case actQuar:
		a, err := n.o.Client.Quarantine(ctx, nt.aid)
		if err != nil {
			fmt.Fprintf(n.o.Log, "coconut notify: quarantine %s: %v\n", who, err)
			n.d.say("Could not quarantine "+who, err.Error())
			return
		}
		fmt.Fprintf(n.o.Log, "coconut notify: quarantined %s: %s\n", who, a.State)
		n.d.say(who+" is "+a.State, "Release it with: coconut agent release "+strconv.FormatUint(nt.aid, 10))
	}
}
