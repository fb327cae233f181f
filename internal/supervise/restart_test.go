package supervise

import (
	"errors"
	"testing"
	"time"
)

// TestRestartsOneRow: a recorded call whose answer was lost (a signal
// withdrew it) and that its thread makes again, decided the same on the
// same object, needs no second row; anything else does.
func TestRestartsOneRow(t *testing.T) {
	deny := Event{TID: 7, Syscall: "openat", Path: "/secret", Access: Read, Errno: ECapability}
	other := deny
	other.Path = "/other"
	allowed := deny
	allowed.Allowed, allowed.Errno = true, 0
	tests := []struct {
		name   string
		lost   bool          // the first answer was not delivered
		tid    int           // the thread of the second notification
		second Event         // the second recorded call
		wait   time.Duration // between the two
		again  bool          // want: the second is recorded already
	}{
		{"restart after a lost answer", true, 7, deny, 0, true},
		{"answer delivered: a new call", false, 7, deny, 0, false},
		{"another thread", true, 8, deny, 0, false},
		{"another object", true, 7, other, 0, false},
		{"decided otherwise", true, 7, allowed, 0, false},
		{"too late", true, 7, deny, restartWithin + 10*time.Millisecond, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r restarts
			r.begin(7)
			first := deny
			if r.recordedAlready(&first) {
				t.Fatal("first call recorded already")
			}
			r.recorded(&first, nil)
			if tt.lost {
				r.undelivered()
			}
			r.end(7)
			time.Sleep(tt.wait)
			r.begin(tt.tid)
			second := tt.second
			second.TID = tt.tid
			if got := r.recordedAlready(&second); got != tt.again {
				t.Fatalf("recordedAlready = %v, want %v", got, tt.again)
			}
			r.end(tt.tid)
		})
	}
	// A row that could not be written is no row: its restart is recorded.
	var r restarts
	r.begin(7)
	ev := deny
	r.recordedAlready(&ev)
	r.recorded(&ev, errTest)
	r.undelivered()
	r.end(7)
	r.begin(7)
	if r.recordedAlready(&ev) {
		t.Fatal("restart of a call whose row failed treated as recorded")
	}
}

var errTest = errors.New("chain refused")
