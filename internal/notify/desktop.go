package notify

import (
	"fmt"

	"github.com/godbus/dbus/v5"
)

// The freedesktop.org notification service.
const (
	busName   = "org.freedesktop.Notifications"
	busPath   = dbus.ObjectPath("/org/freedesktop/Notifications")
	busIface  = "org.freedesktop.Notifications"
	appName   = "Coconut"
	appIcon   = "dialog-warning"
	actReview = "default" // the default action: a click on the notification
	actQuar   = "quarantine"
)

// desktop posts notifications on the session bus and hands back the
// actions the user invokes.
type desktop struct {
	conn    *dbus.Conn
	obj     dbus.BusObject
	signals chan *dbus.Signal
}

// invoked is an action the user chose on one of our notifications.
type invoked struct {
	id     uint32
	action string
}

// closed is a notification the server took off the screen.
type closedNote struct{ id uint32 }

func openDesktop() (*desktop, error) {
	conn, err := dbus.ConnectSessionBus()
	if err != nil {
		return nil, fmt.Errorf("session bus (is DBUS_SESSION_BUS_ADDRESS set?): %w", err)
	}
	for _, member := range []string{"ActionInvoked", "NotificationClosed"} {
		if err := conn.AddMatchSignal(dbus.WithMatchObjectPath(busPath), dbus.WithMatchInterface(busIface), dbus.WithMatchMember(member)); err != nil {
			conn.Close()
			return nil, fmt.Errorf("subscribe to %s: %w", member, err)
		}
	}
	d := &desktop{conn: conn, obj: conn.Object(busName, busPath), signals: make(chan *dbus.Signal, 64)}
	conn.Signal(d.signals)
	return d, nil
}

func (d *desktop) Close() error { return d.conn.Close() }

// post shows one notification, replacing the one with id replaces (0: new),
// and answers its id.
func (d *desktop) post(replaces uint32, n *note, summary, body string) (uint32, error) {
	actions := []string{actReview, "Review", actQuar, "Quarantine"}
	hints := map[string]dbus.Variant{
		"urgency":       dbus.MakeVariant(byte(1)),
		"category":      dbus.MakeVariant("presence"),
		"desktop-entry": dbus.MakeVariant("coconut-notify"),
		hintAID:         dbus.MakeVariant(n.aid),
		hintSeq:         dbus.MakeVariant(n.seqs[len(n.seqs)-1]),
		hintFirst:       dbus.MakeVariant(n.seqs[0]),
		hintCount:       dbus.MakeVariant(uint32(n.count())),
	}
	var id uint32
	err := d.obj.Call(busIface+".Notify", 0, appName, replaces, appIcon, summary, body, actions, hints, int32(-1)).Store(&id)
	if err != nil {
		return 0, fmt.Errorf("post a notification: %w", err)
	}
	return id, nil
}

// say posts a plain notice without actions (an explanation, an error).
func (d *desktop) say(summary, body string) {
	d.obj.Call(busIface+".Notify", 0, appName, uint32(0), "dialog-information", summary, escapeMarkup(body), []string{},
		map[string]dbus.Variant{"urgency": dbus.MakeVariant(byte(1))}, int32(-1))
}

// event turns a bus signal into an invoked or a closedNote (nil otherwise).
func (d *desktop) event(s *dbus.Signal) any {
	if s == nil || s.Path != busPath {
		return nil
	}
	switch s.Name {
	case busIface + ".ActionInvoked":
		if len(s.Body) == 2 {
			id, ok1 := s.Body[0].(uint32)
			act, ok2 := s.Body[1].(string)
			if ok1 && ok2 {
				return invoked{id, act}
			}
		}
	case busIface + ".NotificationClosed":
		if len(s.Body) >= 1 {
			if id, ok := s.Body[0].(uint32); ok {
				return closedNote{id}
			}
		}
	}
	return nil
}
