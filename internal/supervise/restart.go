package supervise

import "time"

// restarts gives a trapped call the kernel restarted the row it already
// has, instead of a second one (issue 20). A signal that reaches the
// caller while the supervisor decides and records (the row's fsync, a
// millisecond) withdraws the notification: the answer cannot be sent, the
// caller never sees it, and the kernel restarts the call, which is
// trapped again. Seen about once in 400 denied opens of a Go agent (the
// runtime's preemption signal races its entry into the call). That
// restarted call, if decided the same on the same object, is the same
// call: it is answered without a new row. Anything else from the thread
// in between, or a different decision, is recorded as usual, so nothing
// is answered without a row for its decision.
//
// A Server uses it from its one goroutine: begin and end bracket each
// notification.
type restarts struct {
	pending   map[int]unanswered // by thread: its last recorded call, not answered
	candidate *Event             // this notification's thread's unanswered call
	last      *Event             // recorded (or already recorded) for this notification
	lost      bool               // this notification's answer could not be sent
}

type unanswered struct {
	ev Event
	at time.Time
}

// restartWithin bounds how soon after the failed answer the restart comes
// (the signal handler runs in between).
const restartWithin = time.Second

// maxUnanswered bounds the threads remembered; past it they are dropped
// (a thread that died mid-call never restarts it).
const maxUnanswered = 1024

func (r *restarts) begin(tid int) {
	r.candidate, r.last, r.lost = nil, nil, false
	if u, ok := r.pending[tid]; ok {
		delete(r.pending, tid)
		if time.Since(u.at) < restartWithin {
			r.candidate = &u.ev
		}
	}
}

// recordedAlready reports whether ev is the restart of the thread's
// unanswered call, whose row exists.
func (r *restarts) recordedAlready(ev *Event) bool {
	c := r.candidate
	r.candidate = nil
	if c == nil || !sameCall(*c, *ev) {
		return false
	}
	r.last = c
	return true
}

// recorded notes ev's row (none if err).
func (r *restarts) recorded(ev *Event, err error) {
	if err == nil {
		e := *ev
		r.last = &e
	}
}

// undelivered notes that this notification's answer was not received.
func (r *restarts) undelivered() { r.lost = true }

func (r *restarts) end(tid int) {
	if r.lost && r.last != nil {
		if r.pending == nil || len(r.pending) >= maxUnanswered {
			r.pending = map[int]unanswered{}
		}
		r.pending[tid] = unanswered{ev: *r.last, at: time.Now()}
	}
	r.candidate, r.last, r.lost = nil, nil, false
}

// sameCall: the same system call, decided the same, on the same object.
func sameCall(a, b Event) bool {
	return a.Syscall == b.Syscall && a.Path == b.Path && a.Object == b.Object && a.Cap == b.Cap &&
		a.Access == b.Access && a.Allowed == b.Allowed && a.Errno == b.Errno
}
