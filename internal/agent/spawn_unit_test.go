package agent

import (
	"context"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/coconut-os/coconut/api"
	"github.com/coconut-os/coconut/internal/attest"
	"github.com/coconut-os/coconut/internal/audit"
	"github.com/coconut-os/coconut/internal/capability"
	"github.com/coconut-os/coconut/internal/sign"
	"github.com/coconut-os/coconut/internal/state"
)

// Spawn and run without root (harness_test.go): what the Manager decides,
// records and asks of its cgroups, enforcer and launcher.

// startRows are the rows of an agent that reached Active, in order.
var startRows = []string{audit.TypeAgentSpawn, audit.TypeAgentAttest, "agent.state:Attested", "agent.state:Active"}

// TestUnitNoEnforcerRefuses: with no enforcer nothing starts: no cgroup,
// no launch, no row (the refusal comes before any AID exists).
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
	if _, err := u.m.Spawn(context.Background(), u.caller, u.manifest("no-enforcer", "")); !isErr(err, api.ErrUnavailable) {
		t.Fatalf("spawn err %v, want unavailable", err)
	}
	if rs := u.rows("agent.*"); len(rs) != 0 || len(u.rows(audit.TypeSpawnRefused)) != 0 {
		t.Fatalf("rows %v", rs)
	}
	if aids, _ := u.cg.List(); len(aids) != 0 {
		t.Fatalf("cgroups %v", aids)
	}
}

// TestUnitRunToActive: agent run goes Spawning, Attested, Active with one
// row per step in that order, the enforcer bound with the bundle before
// the program started (in the agent's own cgroup, with its limits written
// there), the registry record on disk, and an attestation that verifies.
func TestUnitRunToActive(t *testing.T) {
	u := newUnit(t)
	a, err := u.m.Run(context.Background(), u.caller, api.RunRequest{
		Command: []string{u.program, "60"}, Caps: []string{"net.connect:127.0.0.1:80"}, Workdir: u.dir,
		Quota: &api.QuotaBudget{CPUWeight: 50, Pids: 16, MemoryMax: 64 << 20},
	})
	if err != nil {
		t.Fatal(err)
	}
	if a.State != string(state.Active) || a.PID <= 0 || !alive(a.PID) {
		t.Fatalf("agent %+v", a)
	}
	if got := u.rowsOf(a.AID); !slices.Equal(got, startRows) {
		t.Fatalf("rows %v, want %v", got, startRows)
	}
	for _, r := range u.rows(audit.TypeAgentState) {
		if r.Object == string(state.Active) && r.PID != a.PID {
			t.Fatalf("Active row names pid %d, the agent is %d", r.PID, a.PID)
		}
	}
	spawn := u.rows(audit.TypeAgentSpawn)[0]
	if spawn.Object != u.program || spawn.Detail["user"] != a.User || spawn.Detail["cgroup_id"] != strconv.FormatUint(a.CgroupID, 10) ||
		spawn.Detail["via"] != attest.ViaCommandLine || spawn.Detail["authorizer_uid"] != strconv.FormatUint(uint64(u.caller.UID), 10) {
		t.Fatalf("spawn row %+v", spawn)
	}

	// Bound before launch, with the bundle; launched in its cgroup.
	if b := u.enf.boundAIDs(); !slices.Equal(b, []uint64{a.AID}) {
		t.Fatalf("bound %v", b)
	}
	u.enf.mu.Lock()
	bound := u.enf.binds[0]
	u.enf.mu.Unlock()
	if bound.CgroupID != a.CgroupID || !slices.ContainsFunc(bound.Caps, func(c capability.Cap) bool { return c.String() == "net.connect:127.0.0.1:80" }) {
		t.Fatalf("bound %+v", bound)
	}
	u.launch.mu.Lock()
	run := u.launch.runs[0]
	u.launch.mu.Unlock()
	if run.group != a.CgroupPath || run.spec.Argv[0] != u.program || !slices.Contains(run.spec.Env, "COCONUT_AID="+strconv.FormatUint(a.AID, 10)) {
		t.Fatalf("launched %+v in %s", run.spec, run.group)
	}
	if run.spec.CgroupProcs != nil {
		t.Fatalf("v1 groups to join %v: the fake tree is v2", run.spec.CgroupProcs)
	}
	for file, want := range map[string]string{"cpu.weight": "50", "pids.max": "16", "memory.max": "67108864"} {
		if b, err := os.ReadFile(filepath.Join(a.CgroupPath, file)); err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", file, b, err, want)
		}
	}

	if left := machineV1Groups(t, filepath.Base(u.cg.Tree.Root)); len(left) != 0 {
		t.Fatalf("groups in the machine's v1 hierarchies: %v", left)
	}
	rec := u.record(a.AID)
	if rec.State != state.Active || rec.PID != a.PID || rec.PIDStart == 0 || !slices.Equal(rec.Caps, []string{"net.connect:127.0.0.1:80"}) ||
		!slices.Equal(rec.Ceiling, rec.Caps) || rec.Quota.Pids != 16 {
		t.Fatalf("record %+v", rec)
	}
	att, err := u.m.Attestation(u.caller, a.AID)
	if err != nil {
		t.Fatal(err)
	}
	c, err := attest.Verify(att.Envelope, u.m.cfg.HostKey.Public().(ed25519.PublicKey), u.trust)
	if err != nil {
		t.Fatal(err)
	}
	if c.AID != a.AID || c.CgroupPath != a.CgroupPath || c.Binary.SHA256 != a.BinarySHA || c.Manifest != nil || c.Enforcement.Backend != "fake" {
		t.Fatalf("claims %+v", c)
	}
}

// TestUnitSpawnManifestToActive: a signed manifest with two replicas gives
// two Active agents, each with its rows in order and an attestation naming
// the manifest it came from and the key that signed it.
func TestUnitSpawnManifestToActive(t *testing.T) {
	u := newUnit(t)
	req := u.manifest("pair", "    replicas: 2\n")
	agents, err := u.m.Spawn(context.Background(), u.caller, req)
	if err != nil {
		t.Fatal(err)
	}
	if len(agents) != 2 || agents[0].Name != "w-1" || agents[1].Name != "w-2" {
		t.Fatalf("agents %+v", agents)
	}
	hostPub := u.m.cfg.HostKey.Public().(ed25519.PublicKey)
	for _, a := range agents {
		if a.State != string(state.Active) || a.Workload != "pair" {
			t.Fatalf("agent %+v", a)
		}
		if got := u.rowsOf(a.AID); !slices.Equal(got, startRows) {
			t.Fatalf("agent %d rows %v", a.AID, got)
		}
		att, err := u.m.Attestation(u.caller, a.AID)
		if err != nil {
			t.Fatal(err)
		}
		c, err := attest.Verify(att.Envelope, hostPub, u.trust)
		if err != nil {
			t.Fatal(err)
		}
		if c.Manifest == nil || c.Manifest.Name != "pair" || c.Manifest.File != "pair.yaml" ||
			c.Manifest.SignerKeyID != signerKeyID(u) || c.Authorizer.Via != attest.ViaManifest {
			t.Fatalf("claims %+v, manifest %+v", c, c.Manifest)
		}
		if rec := u.record(a.AID); !slices.Equal(rec.Ceiling, []string{"net.connect:127.0.0.0/8:*"}) {
			t.Fatalf("ceiling %v", rec.Ceiling)
		}
	}
	if len(u.rows(audit.TypeSpawnRefused)) != 0 || u.launch.count() != 2 {
		t.Fatalf("refused rows or launches %d", u.launch.count())
	}
}

// TestUnitSpawnRefused: a manifest that is unsigned, signed by an unknown
// key, malformed or asks beyond its own ceiling is refused with the error
// kind the API maps, one spawn.refused row (file, uid, reason) and no agent:
// no AID, no cgroup, no launch.
func TestUnitSpawnRefused(t *testing.T) {
	_, stranger, _ := ed25519.GenerateKey(nil)
	tests := []struct {
		name   string
		req    func(u *unit) api.SpawnRequest
		kind   error
		reason string
	}{
		{"unsigned", func(u *unit) api.SpawnRequest {
			r := u.manifest("m", "")
			r.Signature = nil
			return r
		}, api.ErrSignature, "not signed"},
		{"unknown key", func(u *unit) api.SpawnRequest {
			r := u.manifest("m", "")
			sig, err := sign.SignManifest(stranger, "m.yaml", r.Manifest)
			if err != nil {
				t.Fatal(err)
			}
			r.Signature = sig
			return r
		}, api.ErrSignature, "not in the trust store"},
		{"changed after signing", func(u *unit) api.SpawnRequest {
			r := u.manifest("m", "")
			r.Manifest = append(r.Manifest, []byte("# appended\n")...)
			return r
		}, api.ErrSignature, "altered after signing"},
		{"malformed", func(u *unit) api.SpawnRequest {
			return u.signed("m.yaml", []byte("apiVersion: coconut/v1\nkind: Workload\nmetadata: {name: m}\nagents:\n  - name: w\n    comand: [/bin/true]\n"))
		}, api.ErrInvalid, "m.yaml:6"},
		{"beyond its ceiling", func(u *unit) api.SpawnRequest {
			return u.manifestCaps("m", []string{"net.connect:10.0.0.1:80"}, []string{"net.connect:127.0.0.0/8:*"})
		}, api.ErrInvalid, "not within the agent's ceiling"},
		{"relative program", func(u *unit) api.SpawnRequest {
			return u.signed("m.yaml", []byte("apiVersion: coconut/v1\nkind: Workload\nmetadata: {name: m}\nagents:\n  - name: w\n    command: [sleep, '60']\n"))
		}, api.ErrInvalid, "m.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := newUnit(t)
			_, err := u.m.Spawn(context.Background(), u.caller, tt.req(u))
			if !isErr(err, tt.kind) || !strings.Contains(err.Error(), tt.reason) {
				t.Fatalf("err %v, want %v containing %q", err, tt.kind, tt.reason)
			}
			rows := u.rows(audit.TypeSpawnRefused)
			if len(rows) != 1 {
				t.Fatalf("%d spawn.refused rows", len(rows))
			}
			r := rows[0]
			if r.AID != 0 || r.Object != "m.yaml" || r.Result != audit.ResultDeny || r.Detail["reason"] != err.Error() ||
				r.Detail["uid"] != strconv.FormatUint(uint64(u.caller.UID), 10) {
				t.Fatalf("row %+v", r)
			}
			if n := len(u.m.List(u.caller, true)); n != 0 || u.launch.count() != 0 || len(u.rows("agent.*")) != 0 {
				t.Fatalf("%d agents, %d launches, agent rows %v", n, u.launch.count(), u.rows("agent.*"))
			}
			if aids, _ := u.cg.List(); len(aids) != 0 {
				t.Fatalf("cgroups %v", aids)
			}
		})
	}
}

// TestUnitStartFails: a start that fails after the agent exists (the
// enforcer refuses the bundle, the launcher fails) ends it
// Terminated-revoked with the cause, after its spawn rows; its cgroup is
// removed, nothing keeps running, and the error is the step's.
func TestUnitStartFails(t *testing.T) {
	tests := []struct {
		name      string
		setup     func(u *unit)
		kind      error
		rows      []string
		launches  int
		reasonHas string
	}{
		{"enforcer refuses", func(u *unit) { u.enf.bindErr = errors.New("no room in the map") }, api.ErrUnavailable,
			[]string{audit.TypeAgentSpawn, audit.TypeAgentAttest, "agent.state:Attested", "agent.state:Terminated-revoked"}, 0, "no room in the map"},
		{"launch fails", func(u *unit) { u.launch.err = errors.New("exec format error") }, api.ErrInvalid,
			[]string{audit.TypeAgentSpawn, audit.TypeAgentAttest, "agent.state:Attested", "agent.state:Terminated-revoked"}, 0, "exec format error"},
		{"Active cannot be recorded", func(u *unit) { u.chain.setRefuseState(string(state.Active)) }, api.ErrUnavailable,
			[]string{audit.TypeAgentSpawn, audit.TypeAgentAttest, "agent.state:Attested", "agent.state:Terminated-revoked"}, 1, "refused by the test"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := newUnit(t)
			tt.setup(u)
			_, err := u.run(u.caller, "net.connect:127.0.0.1:80")
			if !isErr(err, tt.kind) || !strings.Contains(err.Error(), tt.reasonHas) {
				t.Fatalf("err %v, want %v containing %q", err, tt.kind, tt.reasonHas)
			}
			all := u.m.List(u.caller, true)
			if len(all) != 1 {
				t.Fatalf("agents %+v", all)
			}
			a := all[0]
			if a.State != string(state.TerminatedRevoked) || !strings.Contains(a.Reason, "spawn failed") || !strings.Contains(a.Reason, tt.reasonHas) {
				t.Fatalf("agent %s: %s", a.State, a.Reason)
			}
			if got := u.rowsOf(a.AID); !slices.Equal(got, tt.rows) {
				t.Fatalf("rows %v, want %v", got, tt.rows)
			}
			if u.launch.count() != tt.launches || !u.cg.called("remove "+a.CgroupPath) {
				t.Fatalf("launches %d, cgroup calls %v", u.launch.count(), u.cg.calls)
			}
			if _, err := os.Stat(a.CgroupPath); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("cgroup left: %v", err)
			}
			u.enf.mu.Lock()
			unbound := slices.Contains(u.enf.unbinds, a.AID)
			u.enf.mu.Unlock()
			if !unbound { // bound or not, the enforcer forgets it
				t.Fatalf("agent %d not unbound", a.AID)
			}
			if rec := u.record(a.AID); rec.State != state.TerminatedRevoked || rec.EndTime.IsZero() {
				t.Fatalf("record %+v", rec)
			}
			u.m.reapers.Wait() // a launched program was killed and reaped: no watcher left
			for _, r := range u.launch.runs {
				if alive(r.cmd.Process.Pid) {
					t.Fatalf("pid %d still runs", r.cmd.Process.Pid)
				}
			}
		})
	}
}

// TestUnitRunRefused: agent run's bad input is refused before anything
// exists, with no row (agent run has no manifest to record), and the
// reserve check runs first.
func TestUnitRunRefused(t *testing.T) {
	u := newUnit(t)
	tests := []struct {
		name string
		req  api.RunRequest
		kind error
	}{
		{"relative command", api.RunRequest{Command: []string{"sleep", "1"}}, api.ErrInvalid},
		{"bad cap", api.RunRequest{Command: []string{u.program}, Caps: []string{"fs.fly:/x"}}, api.ErrInvalid},
		{"reserved env", api.RunRequest{Command: []string{u.program}, Env: map[string]string{"COCONUT_AID": "1"}}, api.ErrInvalid},
		{"negative quota", api.RunRequest{Command: []string{u.program}, Quota: &api.QuotaBudget{Pids: -2}}, api.ErrInvalid},
		{"another user", api.RunRequest{Command: []string{u.program}, User: otherUser(u.caller.UID)}, otherUserKind(u.caller.UID)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.req.Workdir = u.dir
			if _, err := u.m.Run(context.Background(), u.caller, tt.req); !isErr(err, tt.kind) {
				t.Fatalf("err %v, want %v", err, tt.kind)
			}
		})
	}
	if n := len(u.m.List(u.caller, true)); n != 0 || u.launch.count() != 0 || len(u.rows("")) != 0 {
		t.Fatalf("%d agents, %d launches, rows %v", n, u.launch.count(), u.rows(""))
	}
}

// otherUser is a user an agent of uid may not run as: root when the test
// is not root (a user runs agents only as themself), and for root, who
// may name any user, one that does not exist.
func otherUser(uid uint32) string {
	if uid != 0 {
		return "root"
	}
	return "no-such-user-coconut"
}

func otherUserKind(uid uint32) error {
	if uid != 0 {
		return api.ErrDenied
	}
	return api.ErrInvalid // root may name any user, but one that exists
}

// signerKeyID is the key id of the unit's trusted signing key.
func signerKeyID(u *unit) string {
	return sign.KeyID(u.signer.Public().(ed25519.PublicKey))
}

// machineV1Groups lists the directories named name in this process's own
// groups of the machine's v1 hierarchies: where quota.New's v1 fallback
// would have put the agents' groups of a subtree called name.
func machineV1Groups(t *testing.T, name string) []string {
	t.Helper()
	own, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, line := range strings.Split(string(info), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		pf, qf := strings.Fields(pre), strings.Fields(post)
		if !ok || len(pf) < 5 || len(qf) < 3 || qf[0] != "cgroup" {
			continue
		}
		for _, l := range strings.Split(string(own), "\n") {
			parts := strings.SplitN(l, ":", 3)
			if len(parts) != 3 || parts[1] == "" || !slices.ContainsFunc(strings.Split(parts[1], ","), func(c string) bool {
				return slices.Contains(strings.Split(qf[2], ","), c)
			}) {
				continue
			}
			p := filepath.Join(pf[4], strings.TrimPrefix(parts[2], pf[3]), name)
			if _, err := os.Stat(p); err == nil {
				found = append(found, p)
			}
		}
	}
	return found
}

// TestUnitReserveRefusesSpawn: below the audit reserve (reserve.go) a run
// and a manifest spawn are refused as unavailable before any AID, row or
// process exists, doctor's check says so, and spawning resumes as soon as
// the headroom is back (the free space is read at each spawn).
func TestUnitReserveRefusesSpawn(t *testing.T) {
	u := newUnit(t)
	u.m.reserve.bytes = 1 << 62 // more than any filesystem has free
	if _, err := u.run(u.caller); !isErr(err, api.ErrUnavailable) || !strings.Contains(err.Error(), "below the reserve") {
		t.Fatalf("run below the reserve: %v", err)
	}
	if _, err := u.m.Spawn(context.Background(), u.caller, u.manifest("held")); !isErr(err, api.ErrUnavailable) {
		t.Fatalf("spawn below the reserve: %v", err)
	}
	if c := u.m.ReserveCheck(); c.OK || c.Name != "disk-reserve" || !strings.Contains(c.Detail, "BELOW THE RESERVE") {
		t.Fatalf("doctor's check below the reserve: %+v", c)
	}
	if n := len(u.m.List(u.caller, true)); n != 0 || u.launch.count() != 0 || len(u.rows("")) != 0 {
		t.Fatalf("%d agents, %d launches, rows %v", n, u.launch.count(), u.rows(""))
	}
	u.m.reserve.bytes = 1 // the headroom is back
	if c := u.m.ReserveCheck(); !c.OK {
		t.Fatalf("doctor's check above the reserve: %+v", c)
	}
	a := u.mustRun()
	u.waitState(a.AID, state.Active)
}
