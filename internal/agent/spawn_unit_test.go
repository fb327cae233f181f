package agent

import (
	"testing"

	"github.com/coconut-os/coconut/api"
)

// TestUnitNoEnforcerRefuses: with no enforcer nothing starts: no cgroup,
// no launch.
func TestUnitNoEnforcerRefuses(t *testing.T) {
	u := newUnit(t)
	u.close()
	u.enf = nil
	u.open()
	_, err := u.run(u.caller)
	if !isErr(err, api.ErrUnavailable) {
		t.Fatalf("err %v, want unavailable", err)
	}
	if u.launch.count() != 0 || u.cg.called("kill ") {
		t.Fatalf("launched %d, cgroup calls %v", u.launch.count(), u.cg.calls)
	}
}
