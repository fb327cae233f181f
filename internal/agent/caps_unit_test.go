package agent

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/coconut-os/coconut/api"
	"github.com/coconut-os/coconut/internal/audit"
	"github.com/coconut-os/coconut/internal/state"
)

// Grants and revocations without root: the row first, then the enforcer
// told the whole new bundle, then the record.

// spawnOne spawns the unit's manifest (net.connect:127.0.0.1:80 under the
// ceiling net.connect:127.0.0.0/8:*) and returns its agent.
func (u *unit) spawnOne(extra ...string) api.Agent {
	u.t.Helper()
	as, err := u.m.Spawn(context.Background(), u.caller, u.manifest("caps", extra...))
	if err != nil {
		u.t.Fatal(err)
	}
	return as[0]
}

// enforced is the bundle the enforcer was last given for aid, as strings.
func (u *unit) enforced(aid uint64) []string {
	u.t.Helper()
	a, ok := u.enf.lastUpdate(aid)
	if !ok {
		u.t.Fatalf("the enforcer was never updated for agent %d", aid)
	}
	var out []string
	for _, c := range a.Caps {
		out = append(out, c.String())
	}
	return out
}

func (u *unit) updates() int {
	u.enf.mu.Lock()
	defer u.enf.mu.Unlock()
	return len(u.enf.updates)
}

// TestUnitGrantWithinCeiling: a grant inside the ceiling is one cap.grant
// row (who granted it), the enforcer's new bundle holds the old and the
// new capability, and the record on disk keeps it. Granting it again
// changes nothing and writes nothing.
func TestUnitGrantWithinCeiling(t *testing.T) {
	u := newUnit(t)
	a := u.spawnOne()
	caps, err := u.m.Grant(context.Background(), u.caller, a.AID, []string{"net.connect:127.0.0.2:443"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"net.connect:127.0.0.1:80", "net.connect:127.0.0.2:443"}
	if !slices.Equal(caps, want) {
		t.Fatalf("caps %v, want %v", caps, want)
	}
	rows := u.rows(audit.TypeCapGrant)
	if len(rows) != 1 || rows[0].AID != a.AID || rows[0].Cap != "net.connect:127.0.0.2:443" || rows[0].Result != audit.ResultAllow ||
		rows[0].Detail["by_uid"] != strconv.FormatUint(uint64(u.caller.UID), 10) || rows[0].Detail["by_aid"] != "" {
		t.Fatalf("rows %+v", rows)
	}
	for _, c := range want {
		if !slices.Contains(u.enforced(a.AID), c) {
			t.Fatalf("enforcer bundle %v lacks %s", u.enforced(a.AID), c)
		}
	}
	if rec := u.record(a.AID); !slices.Equal(rec.Caps, want) || len(rec.Delegated) != 0 {
		t.Fatalf("record caps %v, delegated %v", rec.Caps, rec.Delegated)
	}
	n := u.updates()
	if caps, err := u.m.Grant(context.Background(), u.caller, a.AID, []string{"net.connect:127.0.0.2:443"}); err != nil || !slices.Equal(caps, want) {
		t.Fatalf("grant again: %v %v", caps, err)
	}
	if len(u.rows(audit.TypeCapGrant)) != 1 || u.updates() != n {
		t.Fatal("a grant of what the agent holds wrote a row or told the enforcer")
	}
}

// TestUnitGrantRefused: beyond the ceiling, unparsable, for another user's
// agent, by an agent for itself, or on an ended agent: a precise error,
// no row, no change told to the enforcer.
func TestUnitGrantRefused(t *testing.T) {
	u := newUnit(t)
	a := u.spawnOne()
	ended := u.spawnOne()
	if _, err := u.m.Kill(context.Background(), u.caller, ended.AID); err != nil {
		t.Fatal(err)
	}
	stranger := Caller{UID: u.caller.UID + 1000}
	if u.caller.UID != 0 {
		stranger = Caller{UID: u.caller.UID + 1}
	}
	tests := []struct {
		name   string
		caller Caller
		aid    uint64
		caps   []string
		kind   error
		has    string
	}{
		{"beyond ceiling", u.caller, a.AID, []string{"net.connect:10.0.0.1:80"}, api.ErrConflict, "beyond agent"},
		{"one of two beyond", u.caller, a.AID, []string{"net.connect:127.0.0.3:80", "fs.read:/etc/**"}, api.ErrConflict, "fs.read:/etc/**"},
		{"unparsable", u.caller, a.AID, []string{"net.fly:x"}, api.ErrInvalid, "net.fly"},
		{"none", u.caller, a.AID, nil, api.ErrInvalid, "no capabilities"},
		{"no such agent", u.caller, 999, []string{"net.connect:127.0.0.3:80"}, api.ErrNotFound, "no agent 999"},
		{"ended", u.caller, ended.AID, []string{"net.connect:127.0.0.3:80"}, api.ErrConflict, string(state.TerminatedRevoked)},
		{"itself", Caller{UID: u.caller.UID, AID: a.AID}, a.AID, []string{"net.connect:127.0.0.3:80"}, api.ErrDenied, "did not spawn it"},
	}
	if u.caller.UID != 0 { // root sees every agent; another user sees none of ours
		tests = append(tests, struct {
			name   string
			caller Caller
			aid    uint64
			caps   []string
			kind   error
			has    string
		}{"another user", stranger, a.AID, []string{"net.connect:127.0.0.3:80"}, api.ErrNotFound, "no agent"})
	}
	n := u.updates()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := u.m.Grant(context.Background(), tt.caller, tt.aid, tt.caps)
			if !isErr(err, tt.kind) || !strings.Contains(err.Error(), tt.has) {
				t.Fatalf("err %v, want %v containing %q", err, tt.kind, tt.has)
			}
		})
	}
	if rows := u.rows("cap.*"); len(rows) != 0 || u.updates() != n {
		t.Fatalf("rows %v, %d updates", rows, u.updates()-n)
	}
	if rec := u.record(a.AID); !slices.Equal(rec.Caps, []string{"net.connect:127.0.0.1:80"}) {
		t.Fatalf("caps %v", rec.Caps)
	}
}

// TestUnitGrantEnforcerRefuses: the enforcer refusing a recorded grant
// leaves a second row saying it was not applied, and nothing changed.
func TestUnitGrantEnforcerRefuses(t *testing.T) {
	u := newUnit(t)
	a := u.spawnOne()
	u.enf.updateErr = errors.New("map full")
	_, err := u.m.Grant(context.Background(), u.caller, a.AID, []string{"net.connect:127.0.0.2:443"})
	if !isErr(err, api.ErrUnavailable) || !strings.Contains(err.Error(), "map full") {
		t.Fatalf("err %v", err)
	}
	rows := u.rows(audit.TypeCapGrant)
	if len(rows) != 2 || rows[0].Result != audit.ResultAllow || rows[1].Result != audit.ResultDeny ||
		rows[1].Cap != rows[0].Cap || rows[1].Detail["error"] != "map full" {
		t.Fatalf("rows %+v", rows)
	}
	if caps, _ := u.m.Caps(u.caller, a.AID); !slices.Equal(caps, []string{"net.connect:127.0.0.1:80"}) {
		t.Fatalf("caps %v", caps)
	}
	if rec := u.record(a.AID); !slices.Equal(rec.Caps, []string{"net.connect:127.0.0.1:80"}) {
		t.Fatalf("record caps %v", rec.Caps)
	}
}

// TestUnitGrantRowRefused: no row, no grant: the enforcer is not told.
func TestUnitGrantRowRefused(t *testing.T) {
	u := newUnit(t)
	a := u.spawnOne()
	n := u.updates()
	u.chain.setRefuse(audit.TypeCapGrant)
	if _, err := u.m.Grant(context.Background(), u.caller, a.AID, []string{"net.connect:127.0.0.2:443"}); !isErr(err, api.ErrUnavailable) {
		t.Fatalf("err %v", err)
	}
	if u.updates() != n {
		t.Fatal("the enforcer was told a grant the chain did not record")
	}
	if caps, _ := u.m.Caps(u.caller, a.AID); len(caps) != 1 {
		t.Fatalf("caps %v", caps)
	}
}

// TestUnitRevoke: revoking removes every capability the revoked one
// covers, with one cap.revoke row naming them, the enforcer given what is
// kept, and the record; revoking what the agent does not hold is not
// found and writes nothing.
func TestUnitRevoke(t *testing.T) {
	u := newUnit(t)
	a := u.spawnOne()
	if _, err := u.m.Grant(context.Background(), u.caller, a.AID, []string{"net.connect:127.0.0.2:443", "net.connect:127.0.0.2:8443", "net.connect:127.0.0.3:22"}); err != nil {
		t.Fatal(err)
	}
	kept, err := u.m.Revoke(context.Background(), u.caller, a.AID, []string{"net.connect:127.0.0.2:*"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"net.connect:127.0.0.1:80", "net.connect:127.0.0.3:22"}
	if !slices.Equal(kept, want) {
		t.Fatalf("kept %v, want %v", kept, want)
	}
	rows := u.rows(audit.TypeCapRevoke)
	if len(rows) != 1 || rows[0].Cap != "net.connect:127.0.0.2:443 net.connect:127.0.0.2:8443" || rows[0].Detail["cause"] != "" ||
		rows[0].Detail["by_uid"] != strconv.FormatUint(uint64(u.caller.UID), 10) {
		t.Fatalf("rows %+v", rows)
	}
	if got := u.enforced(a.AID); slices.Contains(got, "net.connect:127.0.0.2:443") || !slices.Contains(got, "net.connect:127.0.0.3:22") {
		t.Fatalf("enforcer bundle %v", got)
	}
	if rec := u.record(a.AID); !slices.Equal(rec.Caps, kept) || rec.State != state.Active {
		t.Fatalf("record %v %s", rec.Caps, rec.State)
	}
	n := u.updates()
	if _, err := u.m.Revoke(context.Background(), u.caller, a.AID, []string{"net.connect:127.0.0.2:443"}); !isErr(err, api.ErrNotFound) {
		t.Fatalf("revoke again: %v", err)
	}
	if len(u.rows(audit.TypeCapRevoke)) != 1 || u.updates() != n {
		t.Fatal("a revoke of nothing wrote a row or told the enforcer")
	}
}

// TestUnitRevokeFileQuarantines: without a supervisor file access cannot
// be cut while the agent runs, so a file revoke quarantines it (the cgroup
// frozen) and says why; a freeze that fails ends the agent instead.
func TestUnitRevokeFileQuarantines(t *testing.T) {
	u := newUnit(t)
	dir := u.dir
	as, err := u.m.Spawn(context.Background(), u.caller, u.manifestCaps("files", []string{"fs.read:" + dir + "/**", "net.connect:127.0.0.1:80"}, nil))
	if err != nil {
		t.Fatal(err)
	}
	a := as[0]
	kept, err := u.m.Revoke(context.Background(), u.caller, a.AID, []string{"fs.read:" + dir + "/**"})
	if !isErr(err, api.ErrConflict) || !strings.Contains(err.Error(), "quarantined") || !slices.Equal(kept, []string{"net.connect:127.0.0.1:80"}) {
		t.Fatalf("kept %v, err %v", kept, err)
	}
	if !u.cg.called("freeze " + a.CgroupPath + " true") {
		t.Fatalf("cgroup calls %v", u.cg.calls)
	}
	if got := u.rowsOf(a.AID); !slices.Equal(got[len(got)-2:], []string{audit.TypeCapRevoke, "agent.state:Quarantined"}) {
		t.Fatalf("rows %v", got)
	}
	if rec := u.record(a.AID); rec.State != state.Quarantined || !slices.Equal(rec.Caps, []string{"net.connect:127.0.0.1:80"}) {
		t.Fatalf("record %s %v", rec.State, rec.Caps)
	}

	b := u.spawnOne()
	b2, err := u.m.Spawn(context.Background(), u.caller, u.manifestCaps("files2", []string{"fs.read:" + dir + "/**"}, nil))
	if err != nil {
		t.Fatal(err)
	}
	u.cg.freezeErr = errors.New("frozen solid")
	if _, err := u.m.Revoke(context.Background(), u.caller, b2[0].AID, []string{"fs.read:" + dir + "/**"}); !isErr(err, api.ErrInternal) {
		t.Fatalf("err %v", err)
	}
	if got := u.waitState(b2[0].AID, state.TerminatedRevoked); !strings.Contains(got.Reason, "frozen solid") {
		t.Fatalf("reason %q", got.Reason)
	}
	if st := u.waitState(b.AID, state.Active); st.AID != b.AID {
		t.Fatal("another agent was touched")
	}
}
