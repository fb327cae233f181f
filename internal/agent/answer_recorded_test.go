package agent

import (
	"testing"

	"github.com/coconut-os/coconut/internal/audit"
	"github.com/coconut-os/coconut/internal/enforce"
	"github.com/coconut-os/coconut/internal/state"
	"github.com/coconut-os/coconut/internal/supervise"
)

// journal is an enforcer's Journaled side: the current bundle's answer
// for one agent (allowed paths and access), and the answers given.
type journal struct {
	enforce.Enforcer
	allowed  map[string]supervise.Access
	answered map[uint64]int
}

func (j *journal) AnswerRecorded(aid, id uint64, errno int) bool {
	j.answered[id] = errno
	return true
}

func (j *journal) StillAllowed(aid uint64, path string, access supervise.Access) bool {
	a, ok := j.allowed[path]
	return ok && a&access == access
}

// TestAnswerRecordedRechecksAllows: rows the previous daemon wrote
// (through recordEvents, the real row builder) are answered from the
// chain only while their verdict still holds: an allow revoked since is
// not answered CONTINUE (the call restarts and is decided again).
func TestAnswerRecordedRechecksAllows(t *testing.T) {
	r := &record{AID: 7, CgroupID: 70, State: state.Active}
	m := testManager(t, r)
	chain, err := audit.Open(t.TempDir(), audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer chain.Close()
	m.cfg.Chain = chain
	ev := func(id uint64, cap, path string) enforce.Event {
		return enforce.Event{Source: "supervisor", CgroupID: 70, PID: 1, Cap: cap, Object: path, Syscall: "openat", Allowed: true, NotifID: id}
	}
	m.recordEvents([]enforce.Event{
		ev(1, "fs.read", "/work/kept"),
		ev(2, "fs.read+write", "/work/revoked"),
		ev(4, "fs.write", "/work/readonly-now"),
	})
	j := &journal{allowed: map[string]supervise.Access{"/work/kept": supervise.Read, "/work/readonly-now": supervise.Read},
		answered: map[uint64]int{}}
	supervision{enf: j, cgroups: Groups{}, chain: chain, log: m.log}.answerRecorded(7)
	if e, ok := j.answered[1]; !ok || e != 0 {
		t.Errorf("a still allowed call: answered %v errno %d", ok, e)
	}
	for _, id := range []uint64{2, 4} {
		if e, ok := j.answered[id]; ok {
			t.Errorf("notification %d, revoked since its row, answered errno %d", id, e)
		}
	}
}
