package notify

import (
	"errors"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/coconut-os/coconut/api"
)

var t0 = time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)

func deny(seq, aid uint64) api.Record {
	return api.Record{Seq: seq, AID: aid, Type: "cap.deny", Cap: "fs.read", Object: "/home/u/.ssh/id_ed25519", Result: "deny", Errno: 134}
}

// A 1,000-deny loop over three minutes: the first at once, then at most
// one summary a minute, and every deny in exactly one note.
func TestThrottleLoop(t *testing.T) {
	th := newThrottle(time.Minute)
	var notes []*note
	var at []time.Duration
	for i := range 1000 {
		now := t0.Add(time.Duration(i) * 180 * time.Millisecond)
		notes = append(notes, th.due(now)...)
		if n := th.add(now, deny(uint64(i+1), 31)); n != nil {
			notes = append(notes, n)
		}
		for len(at) < len(notes) {
			at = append(at, now.Sub(t0))
		}
	}
	notes = append(notes, th.due(t0.Add(10*time.Minute))...)
	if len(notes) > 5 {
		t.Fatalf("%d notifications for one looping agent in 3 minutes", len(notes))
	}
	if len(notes[0].seqs) != 1 || at[0] != 0 {
		t.Fatalf("the first deny was not shown at once: %v at %v", notes[0].seqs, at[0])
	}
	for i := 1; i < len(at); i++ {
		if at[i]-at[i-1] < time.Minute {
			t.Fatalf("notes %d and %d only %v apart", i-1, i, at[i]-at[i-1])
		}
	}
	want := uint64(1)
	for _, n := range notes {
		for _, s := range n.seqs {
			if s != want {
				t.Fatalf("seq %d, want %d: a deny lost or repeated", s, want)
			}
			want++
		}
		if n.latest.Seq != n.seqs[len(n.seqs)-1] {
			t.Fatalf("latest %d, last seq %d", n.latest.Seq, n.seqs[len(n.seqs)-1])
		}
	}
	if want != 1001 {
		t.Fatalf("notes cover %d denies, want 1000", want-1)
	}
	if b := body(notes[1], "/home/u"); b != itoa(len(notes[1].seqs))+" more denies, the latest: fs.read ~/.ssh/id_ed25519 — ECAPABILITY" {
		t.Fatalf("summary body %q", b)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestThrottleAgentsApartAndQuiet(t *testing.T) {
	th := newThrottle(time.Minute)
	if th.add(t0, deny(1, 31)) == nil || th.add(t0, deny(2, 32)) == nil {
		t.Fatal("each agent's first deny is shown at once")
	}
	if th.add(t0.Add(time.Second), deny(3, 31)) != nil {
		t.Fatal("a second deny within the minute was shown at once")
	}
	if got := th.next(); !got.Equal(t0.Add(time.Minute)) {
		t.Fatalf("next due %v", got)
	}
	if d := th.due(t0.Add(59 * time.Second)); len(d) != 0 {
		t.Fatal("summary before the minute")
	}
	d := th.due(t0.Add(time.Minute))
	if len(d) != 1 || d[0].aid != 31 || len(d[0].seqs) != 1 || d[0].seqs[0] != 3 {
		t.Fatalf("due %+v", d)
	}
	// After a quiet minute the next deny is a first deny again.
	if th.add(t0.Add(3*time.Minute), deny(4, 31)) == nil {
		t.Fatal("a deny after a quiet minute waited")
	}
}

func TestText(t *testing.T) {
	n := &note{aid: 31, seqs: []uint64{7}, latest: deny(7, 31)}
	if s := summary("nosy-reviewer", n); s != "nosy-reviewer (AID 31) was denied" {
		t.Fatalf("summary %q", s)
	}
	if b := body(n, "/home/u"); b != "fs.read ~/.ssh/id_ed25519 — ECAPABILITY" {
		t.Fatalf("body %q", b)
	}
	n.latest.Object = "/home/u/<img src=x onerror=alert(1)>"
	if b := body(n, "/home/u"); b != "fs.read ~/&lt;img src=x onerror=alert(1)&gt; — ECAPABILITY" {
		t.Fatalf("markup not escaped: %q", b)
	}
	n.latest.Object, n.latest.Errno = "/home/user2/x", 13
	if b := body(n, "/home/u"); b != "fs.read /home/user2/x — EACCES" {
		t.Fatalf("body %q", b)
	}
}

// Restarting from the saved state shows exactly the denies not shown yet,
// even when one agent's summary is still pending while another's
// notifications go on.
func TestStateResume(t *testing.T) {
	path := filepath.Join(t.TempDir(), "coconut", "notify.json")
	th := newThrottle(time.Minute)
	st := state{Seq: 0}
	shown := map[uint64]bool{}
	post := func(n *note, read uint64) {
		for _, s := range n.seqs {
			shown[s] = true
		}
		st.record(n, read, th.lowestPending())
		if err := st.save(path); err != nil {
			t.Fatal(err)
		}
	}
	// Agent 31 shown at 1, then pending 2..5; agent 32 shown at 6 and 9.
	seq := uint64(0)
	for i, aid := range []uint64{31, 31, 31, 31, 31, 32, 31, 31, 32} {
		seq++
		now := t0.Add(time.Duration(i) * time.Second)
		if i == 8 {
			now = now.Add(2 * time.Minute) // 32's second deny a quiet while later
		}
		if n := th.add(now, deny(seq, aid)); n != nil {
			post(n, seq)
		}
	}
	got, ok, err := loadState(path)
	if err != nil || !ok {
		t.Fatalf("load: %v %v", ok, err)
	}
	for s := uint64(1); s <= seq; s++ {
		aid := uint64(31)
		if s == 6 || s == 9 {
			aid = 32
		}
		if got.shown(aid, s) != shown[s] {
			t.Errorf("deny %d: shown after restart %v, was shown %v", s, got.shown(aid, s), shown[s])
		}
	}
	if got.Seq != 1 {
		t.Errorf("resume seq %d, want 1 (agent 31's summary is pending from 2)", got.Seq)
	}
}

func TestLoadStateBad(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{"junk": "{", "aid": `{"seq":1,"shown":{"x":2}}`} {
		p := filepath.Join(dir, name)
		writeFile(t, p, body)
		if _, _, err := loadState(p); err == nil {
			t.Errorf("%s: accepted %q", name, body)
		}
	}
	if _, ok, err := loadState(filepath.Join(dir, "none")); ok || err != nil {
		t.Fatalf("missing state: %v %v", ok, err)
	}
}

func TestLockState(t *testing.T) {
	path := filepath.Join(t.TempDir(), "coconut", "notify.json")
	unlock, err := lockState(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lockState(path); !errors.Is(err, ErrRunning) {
		t.Fatalf("second lock: %v, want ErrRunning", err)
	}
	unlock()
	unlock2, err := lockState(path)
	if err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
	unlock2()
}

// An aggregate deny row (issue 19) stands for its detail's count: the
// summary says how many denies, not how many rows.
func TestThrottleCountsAggregateRows(t *testing.T) {
	th := newThrottle(time.Minute)
	if n := th.add(t0, deny(1, 31)); n == nil || n.count() != 1 {
		t.Fatalf("first deny: %+v", n)
	}
	agg := deny(2, 31)
	agg.Detail = map[string]string{"count": "250"}
	if n := th.add(t0.Add(time.Second), agg); n != nil {
		t.Fatalf("a summary before the period: %+v", n)
	}
	th.add(t0.Add(2*time.Second), deny(3, 31))
	notes := th.due(t0.Add(2 * time.Minute))
	if len(notes) != 1 || notes[0].count() != 251 || len(notes[0].seqs) != 2 {
		t.Fatalf("summary: %+v", notes)
	}
	if b := body(notes[0], "/home/u"); b != "251 more denies, the latest: fs.read ~/.ssh/id_ed25519 — ECAPABILITY" {
		t.Fatalf("body %q", b)
	}
}
