package agent

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/coconut-os/coconut/api"
	"github.com/coconut-os/coconut/internal/audit"
	"github.com/coconut-os/coconut/internal/state"
)

// Delegation without root: an agent holding cap.grant:SCOPE spawns and
// grants within SCOPE only, and what it delegated goes when it loses the
// cap.grant.

const (
	scope      = "net.connect:127.0.0.0/8:*"
	grantScope = "cap.grant:" + scope
)

// delegated starts a parent holding cap.grant over scope and one child it
// spawned with caps, and returns both.
func (u *unit) delegated(caps ...string) (parent, child *api.Agent) {
	u.t.Helper()
	parent = u.mustRun(grantScope, "net.connect:127.0.0.1:80")
	child, err := u.m.Run(context.Background(), Caller{UID: u.caller.UID, AID: parent.AID}, api.RunRequest{
		Command: []string{u.program, "60"}, Caps: caps, Workdir: u.dir, Name: "child",
	})
	if err != nil {
		u.t.Fatal(err)
	}
	return parent, child
}

// TestUnitDelegatedSpawn: a child spawned by an agent runs as the
// parent's user, for the parent's owner, records its parent and who
// delegated each capability, and its ceiling is its bundle plus the
// parent's scope (so the parent may grant it more later).
func TestUnitDelegatedSpawn(t *testing.T) {
	u := newUnit(t)
	parent, child := u.delegated("net.connect:127.0.0.5:80")
	if child.State != string(state.Active) || child.User != parent.User || child.Owner != parent.Owner {
		t.Fatalf("child %+v, parent %+v", child, parent)
	}
	rec := u.record(child.AID)
	if rec.Parent != parent.AID || rec.Delegated["net.connect:127.0.0.5:80"] != parent.AID ||
		!slices.Equal(rec.Ceiling, []string{"net.connect:127.0.0.5:80", scope}) {
		t.Fatalf("record parent %d, delegated %v, ceiling %v", rec.Parent, rec.Delegated, rec.Ceiling)
	}
	if got := u.rowsOf(child.AID); !slices.Equal(got, startRows) {
		t.Fatalf("child rows %v", got)
	}
	u.enf.mu.Lock()
	var ceiling []string
	for _, b := range u.enf.binds {
		if b.AID == child.AID {
			for _, c := range b.Ceiling {
				ceiling = append(ceiling, c.String())
			}
		}
	}
	u.enf.mu.Unlock()
	if !slices.Contains(ceiling, scope) {
		t.Fatalf("the enforcer was bound with ceiling %v", ceiling)
	}
}

// TestUnitDelegationRefused: a child beyond the parent's scope (bundle or
// ceiling), a spawn by an agent with no cap.grant, and a grant by an agent
// to an agent it did not spawn or beyond its scope are denied, and nothing
// is spawned or changed. A refused delegated manifest is recorded like
// any refused spawn, for the parent's owner.
func TestUnitDelegationRefused(t *testing.T) {
	u := newUnit(t)
	parent, child := u.delegated("net.connect:127.0.0.5:80")
	other := u.mustRun("net.connect:127.0.0.1:80")
	asParent := Caller{UID: u.caller.UID, AID: parent.AID}
	asChild := Caller{UID: u.caller.UID, AID: child.AID}
	run := func(c Caller, caps ...string) error {
		_, err := u.m.Run(context.Background(), c, api.RunRequest{Command: []string{u.program, "60"}, Caps: caps, Workdir: u.dir})
		return err
	}
	launches := u.launch.count()
	tests := []struct {
		name string
		do   func() error
		has  string
	}{
		{"child beyond scope", func() error { return run(asParent, "net.connect:10.0.0.1:80") }, "may not delegate net.connect:10.0.0.1:80"},
		{"child with a file cap", func() error { return run(asParent, "fs.read:/etc/**") }, "beyond its cap.grant"},
		{"ceiling beyond scope", func() error {
			_, err := u.m.Spawn(context.Background(), asParent, u.manifestCaps("deleg", []string{"net.connect:127.0.0.5:80"}, []string{"net.connect:0.0.0.0/0:*"}))
			return err
		}, "(ceiling): beyond its cap.grant"},
		{"agent without cap.grant", func() error { return run(asChild, "net.connect:127.0.0.5:80") }, "holds no cap.grant"},
		{"grant to an agent it did not spawn", func() error {
			_, err := u.m.Grant(context.Background(), asParent, other.AID, []string{"net.connect:127.0.0.6:80"})
			return err
		}, "did not spawn it"},
		{"grant beyond scope", func() error {
			_, err := u.m.Grant(context.Background(), asParent, child.AID, []string{"net.connect:10.0.0.1:80"})
			return err
		}, "beyond its cap.grant"},
		{"revoke by an agent from another", func() error {
			_, err := u.m.Revoke(context.Background(), asChild, other.AID, []string{"net.connect:127.0.0.1:80"})
			return err
		}, "did not spawn it"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.do()
			if !isErr(err, api.ErrDenied) || !strings.Contains(err.Error(), tt.has) {
				t.Fatalf("err %v, want denied containing %q", err, tt.has)
			}
		})
	}
	if u.launch.count() != launches || len(u.m.List(u.caller, true)) != 3 {
		t.Fatalf("launches %d -> %d, agents %d", launches, u.launch.count(), len(u.m.List(u.caller, true)))
	}
	if rows := u.rows("cap.*"); len(rows) != 0 {
		t.Fatalf("cap rows %v", rows)
	}
	// Only the manifest one leaves a row: agent run has no manifest to record.
	refused := u.rows(audit.TypeSpawnRefused)
	if len(refused) != 1 || refused[0].Object != "deleg.yaml" || refused[0].Detail["uid"] != strconv.FormatUint(uint64(parent.Owner), 10) ||
		!strings.Contains(refused[0].Detail["reason"], "(ceiling)") {
		t.Fatalf("spawn.refused rows %+v", refused)
	}
}

// TestUnitDelegatedGrant: the parent grants its child more within its
// scope; the row names the parent (by_aid) and the record remembers who
// delegated it. A user's grant of the same capability makes it the
// child's own.
func TestUnitDelegatedGrant(t *testing.T) {
	u := newUnit(t)
	parent, child := u.delegated("net.connect:127.0.0.5:80")
	asParent := Caller{UID: u.caller.UID, AID: parent.AID}
	if _, err := u.m.Grant(context.Background(), asParent, child.AID, []string{"net.connect:127.0.0.6:80"}); err != nil {
		t.Fatal(err)
	}
	rows := u.rows(audit.TypeCapGrant)
	if len(rows) != 1 || rows[0].AID != child.AID || rows[0].Detail["by_aid"] != strconv.FormatUint(parent.AID, 10) {
		t.Fatalf("rows %+v", rows)
	}
	if rec := u.record(child.AID); rec.Delegated["net.connect:127.0.0.6:80"] != parent.AID {
		t.Fatalf("delegated %v", rec.Delegated)
	}
	if !slices.Contains(u.enforced(child.AID), "net.connect:127.0.0.6:80") {
		t.Fatalf("enforcer bundle %v", u.enforced(child.AID))
	}
	// The user grants, with something new, what the child holds by
	// delegation: both are its own now.
	if _, err := u.m.Grant(context.Background(), u.caller, child.AID, []string{"net.connect:127.0.0.6:80", "net.connect:127.0.0.8:80"}); err != nil {
		t.Fatal(err)
	}
	rec := u.record(child.AID)
	if _, ok := rec.Delegated["net.connect:127.0.0.6:80"]; ok || rec.Delegated["net.connect:127.0.0.5:80"] != parent.AID {
		t.Fatalf("delegated %v", rec.Delegated)
	}
	if rows := u.rows(audit.TypeCapGrant); len(rows) != 2 || rows[1].Cap != "net.connect:127.0.0.8:80" || rows[1].Detail["by_aid"] != "" {
		t.Fatalf("rows %+v", rows)
	}
	// A user's grant of only what the child holds by delegation adds
	// nothing to its bundle but makes it the child's own, with a row
	// saying so; granted again, nothing happens.
	before := u.enforced(child.AID)
	for range 2 {
		if _, err := u.m.Grant(context.Background(), u.caller, child.AID, []string{"net.connect:127.0.0.5:80"}); err != nil {
			t.Fatal(err)
		}
	}
	if rec := u.record(child.AID); len(rec.Delegated) != 0 {
		t.Fatalf("still delegated %v", rec.Delegated)
	}
	rows = u.rows(audit.TypeCapGrant)
	if len(rows) != 3 || rows[2].Cap != "net.connect:127.0.0.5:80" || !strings.Contains(rows[2].Detail["cause"], "now the agent's own") {
		t.Fatalf("rows %+v", rows)
	}
	if after := u.enforced(child.AID); !slices.Equal(before, after) {
		t.Fatalf("bundle changed: %v -> %v", before, after)
	}
}

// TestUnitRevokeCascade: revoking the parent's cap.grant revokes from the
// child what it reached by delegation, with its own cap.revoke row naming
// the cause; what the child holds from the user stays, the enforcer gets
// the child's new bundle, and the parent can no longer spawn.
func TestUnitRevokeCascade(t *testing.T) {
	u := newUnit(t)
	parent, child := u.delegated("net.connect:127.0.0.5:80", "net.connect:127.0.0.6:80")
	// The user's own grant to the child, within its ceiling (the scope).
	if _, err := u.m.Grant(context.Background(), u.caller, child.AID, []string{"net.connect:127.0.0.7:80"}); err != nil {
		t.Fatal(err)
	}
	kept, err := u.m.Revoke(context.Background(), u.caller, parent.AID, []string{grantScope})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(kept, []string{"net.connect:127.0.0.1:80"}) {
		t.Fatalf("parent kept %v", kept)
	}
	rows := u.rows(audit.TypeCapRevoke)
	if len(rows) != 2 {
		t.Fatalf("revoke rows %+v", rows)
	}
	if rows[0].AID != parent.AID || rows[0].Cap != grantScope || rows[0].Detail["cause"] != "" {
		t.Fatalf("parent row %+v", rows[0])
	}
	wantCause := "delegated by agent " + strconv.FormatUint(parent.AID, 10) + ", which lost " + grantScope
	if rows[1].AID != child.AID || rows[1].Cap != "net.connect:127.0.0.5:80 net.connect:127.0.0.6:80" || rows[1].Detail["cause"] != wantCause {
		t.Fatalf("child row %+v", rows[1])
	}
	if rows[1].Seq <= rows[0].Seq {
		t.Fatal("the child's row comes before the parent's")
	}
	rec := u.record(child.AID)
	if !slices.Equal(rec.Caps, []string{"net.connect:127.0.0.7:80"}) || len(rec.Delegated) != 0 || rec.State != state.Active {
		t.Fatalf("child record caps %v, delegated %v, %s", rec.Caps, rec.Delegated, rec.State)
	}
	if got := u.enforced(child.AID); slices.Contains(got, "net.connect:127.0.0.5:80") || !slices.Contains(got, "net.connect:127.0.0.7:80") {
		t.Fatalf("child's enforcer bundle %v", got)
	}
	_, err = u.m.Run(context.Background(), Caller{UID: u.caller.UID, AID: parent.AID}, api.RunRequest{
		Command: []string{u.program, "60"}, Caps: []string{"net.connect:127.0.0.5:80"}, Workdir: u.dir})
	if !isErr(err, api.ErrDenied) {
		t.Fatalf("spawn after the revoke: %v", err)
	}
}
