package enforce

import (
	"testing"

	pol "github.com/coconut-os/coconut/internal/policy"
	"github.com/coconut-os/coconut/internal/supervise"
)

// TestConformanceDecider: the daemon's supervisor decider (bundle split
// into files and Unix sockets, the memo, a bundle replaced by set) reaches
// the policy table's verdict on every file and Unix socket case, asked
// twice so that the second answer comes from the memo, and again after a
// set of an empty bundle and back.
func TestConformanceDecider(t *testing.T) {
	s := &supervisor{agents: map[uint64]*fsAgent{}}
	n := 0
	for i, group := range pol.ByBundle(pol.Conformance("/srv/conformance")) {
		b, err := group[0].Bundle()
		if err != nil {
			t.Fatal(err)
		}
		aid := uint64(i + 1)
		s.set(Agent{AID: aid, CgroupID: aid, Caps: b.Caps})
		for round := 0; round < 3; round++ {
			if round == 2 {
				s.set(Agent{AID: aid, CgroupID: aid})
				s.set(Agent{AID: aid, CgroupID: aid, Caps: b.Caps})
			}
			for _, c := range group {
				var got bool
				switch op := c.Op.(type) {
				case pol.File:
					got = s.Allow(aid, op.Path, supervise.Access(op.Access))
				case pol.Unix:
					got = s.AllowUnix(aid, op.Addr)
				default:
					continue
				}
				if round == 0 {
					n++
				}
				if got != c.Allow {
					t.Errorf("case %q (round %d): supervisor decider allow=%v, policy table allow=%v", c.Name, round, got, c.Allow)
				}
			}
		}
	}
	t.Logf("%d conformance cases against the daemon's supervisor decider", n)
}
