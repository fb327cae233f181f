package agent

import (
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/coconut-os/coconut/internal/audit"
	"github.com/coconut-os/coconut/internal/capability"
	"github.com/coconut-os/coconut/internal/inferkey"
	"github.com/coconut-os/coconut/internal/manifest"
	"github.com/coconut-os/coconut/internal/state"
)

func testManager(t *testing.T, recs ...*record) *Manager {
	m := &Manager{cfg: Config{Broker: inferkey.Broker{Socket: "/run/coconut/broker.sock", Addr: netip.MustParseAddrPort("127.0.0.1:7878")}},
		log: slog.Default(), store: store{dir: t.TempDir()}, agents: map[uint64]*entry{}, byCgroup: map[uint64]uint64{}}
	m.tenants.m, m.grants.m = m, m
	for _, r := range recs {
		m.agents[r.AID] = &entry{rec: r}
		m.byCgroup[r.CgroupID] = r.AID
	}
	return m
}

func TestInference(t *testing.T) {
	tests := []struct {
		name       string
		rec        record
		allowed    []string
		refused    []string
		weight     int
		tokenLimit int64
		kv         int64
		wantErr    bool
	}{
		{name: "no inference cap", rec: record{Caps: []string{"fs.read:/tmp/**"}}, refused: []string{"sim"}, weight: 100},
		{name: "any model", rec: record{Caps: []string{"inference:model=*"}}, allowed: []string{"sim", "llama3:8b"}, weight: 100},
		{name: "one family", rec: record{Caps: []string{"inference:model=llama*"}}, allowed: []string{"llama3"}, refused: []string{"gpt-4o"}, weight: 100},
		{name: "quota tokens and weight", rec: record{Caps: []string{"inference:model=*"}, Quota: manifest.Quota{CPUWeight: 300, Tokens: 500}},
			allowed: []string{"sim"}, weight: 300, tokenLimit: 500},
		{name: "cap tokens lower", rec: record{Caps: []string{"inference:model=*,tokens=200"}, Quota: manifest.Quota{Tokens: 500}},
			allowed: []string{"sim"}, weight: 100, tokenLimit: 200},
		{name: "quota lower", rec: record{Caps: []string{"inference:model=*,tokens=900", "inference:model=a"}, Quota: manifest.Quota{Tokens: 500}},
			allowed: []string{"a"}, weight: 100, tokenLimit: 500},
		{name: "hbm left", rec: record{Caps: []string{"inference:model=*"}, Memory: manifest.MemoryTiers{HBM: 1 << 30}, HBMUsed: 1 << 29},
			allowed: []string{"sim"}, weight: 100, kv: 1 << 29},
		{name: "hbm all allocated", rec: record{Caps: []string{"inference:model=*"}, Memory: manifest.MemoryTiers{HBM: 1 << 30}, HBMUsed: 1 << 30},
			allowed: []string{"sim"}, weight: 100, kv: 1},
		{name: "ended", rec: record{State: state.TerminatedClean, Caps: []string{"inference:model=*"}}, wantErr: true},
		{name: "quarantined", rec: record{State: state.Quarantined, Caps: []string{"inference:model=*"}}, wantErr: true},
		// Launched, its Active row not yet written: its first call is served.
		{name: "attested, launching", rec: record{State: state.Attested, Caps: []string{"inference:model=*"}}, allowed: []string{"sim"}, weight: 100},
		{name: "spawning", rec: record{State: state.Spawning, Caps: []string{"inference:model=*"}}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.rec
			r.AID, r.CgroupID = 7, 70
			if r.State == "" {
				r.State = state.Active
			}
			m := testManager(t, &r)
			inf, err := m.Tenants().Inference(7)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("agent in state %s got %+v", r.State, inf)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if inf.Weight != tt.weight || inf.TokenLimit != tt.tokenLimit || inf.KVBytes != tt.kv {
				t.Fatalf("weight %d tokens %d kv %d; want %d %d %d", inf.Weight, inf.TokenLimit, inf.KVBytes, tt.weight, tt.tokenLimit, tt.kv)
			}
			for _, model := range tt.allowed {
				if inf.Models == nil || !inf.Models(model) {
					t.Errorf("model %q refused", model)
				}
			}
			for _, model := range tt.refused {
				if inf.Models != nil && inf.Models(model) {
					t.Errorf("model %q allowed", model)
				}
			}
		})
	}
	if _, err := testManager(t).Tenants().Inference(99); err == nil {
		t.Fatal("unknown agent accepted")
	}
}

func TestBrokerCaps(t *testing.T) {
	m := testManager(t)
	brokerCaps := func(caps []capability.Cap) []capability.Cap { // what implicitCaps starts from
		out, err := m.cfg.Broker.Caps(caps)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	with, _ := capability.ParseAll([]string{"fs.read:/tmp/**", "inference:model=*"})
	without, _ := capability.ParseAll([]string{"net.connect:10.0.0.1:443"})
	got := brokerCaps(with)
	if len(got) != 3 || got[2].String() != "net.connect:127.0.0.1:7878" {
		t.Fatalf("with inference: %v", got)
	}
	if len(with) != 2 {
		t.Fatalf("the caller's slice was changed: %v", with)
	}
	if got := brokerCaps(without); len(got) != 1 {
		t.Fatalf("without inference: %v", got)
	}
	m.cfg.Broker = inferkey.Broker{}
	if got := brokerCaps(with); len(got) != 2 {
		t.Fatalf("no broker: %v", got)
	}
}

func TestKeysAndTokens(t *testing.T) {
	r := &record{AID: 3, CgroupID: 30, State: state.Active, Caps: []string{"inference:model=*"}}
	m := testManager(t, r)
	key, err := m.tenants.newKey(r)
	if err != nil || key == "" || r.KeyHash == "" {
		t.Fatalf("key %q hash %q: %v", key, r.KeyHash, err)
	}
	m.indexKey(r)
	if aid, ok := m.Tenants().AIDOfKey(r.KeyHash); !ok || aid != 3 {
		t.Fatalf("key lookup: %d %v", aid, ok)
	}
	if aid, ok := m.Tenants().AIDOfCgroup(30); !ok || aid != 3 {
		t.Fatalf("cgroup lookup: %d %v", aid, ok)
	}
	m.Tenants().AddTokens(3, 40)
	m.Tenants().AddTokens(3, 2) // within inferkey.SaveEvery: only marked dirty
	m.Tenants().FlushTokens()
	recs, err := m.store.load()
	if err != nil || len(recs) != 1 || recs[0].TokensUsed != 42 {
		t.Fatalf("persisted %+v, %v; want 42 tokens", recs, err)
	}
	// The agent's last call leaves its count unsaved: a timer writes it
	// within inferkey.SaveEvery without any other save or a shutdown.
	m.Tenants().AddTokens(3, 5)
	m.Tenants().AddTokens(3, 1)
	deadline := time.Now().Add(5 * inferkey.SaveEvery)
	for {
		recs, err := m.store.load()
		if err == nil && len(recs) == 1 && recs[0].TokensUsed == 48 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("last calls' tokens never saved: %+v, %v", recs, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var forgot uint64
	m.Tenants().OnEnd(func(aid uint64) { forgot = aid })
	r.State = state.TerminatedClean
	m.tenants.ended(r)
	if _, ok := m.Tenants().AIDOfKey(r.KeyHash); ok || forgot != 3 {
		t.Fatalf("ended agent: key still valid or broker not told (%d)", forgot)
	}
	if _, ok := m.Tenants().AIDOfCgroup(30); ok {
		t.Fatal("ended agent's cgroup still names it")
	}
}

// TestInferenceBlockedReturns: an agent blocked on its budget goes back to
// the state it was blocked from: Active, or Capability-denied (a denial it
// had is not wiped by an inference wait).
func TestInferenceBlockedReturns(t *testing.T) {
	for _, from := range []state.State{state.Active, state.CapabilityDenied} {
		t.Run(string(from), func(t *testing.T) {
			r := &record{AID: 4, CgroupID: 40, State: from, Caps: []string{"inference:model=*"}}
			m := testManager(t, r)
			chain, err := audit.Open(t.TempDir(), audit.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { chain.Close() })
			m.cfg.Chain = chain
			if err := m.Tenants().SetBlocked(4, true, "token budget"); err != nil {
				t.Fatal(err)
			}
			if r.State != state.InferenceBlocked {
				t.Fatalf("blocked: state %s", r.State)
			}
			if err := m.Tenants().SetBlocked(4, false, ""); err != nil {
				t.Fatal(err)
			}
			if r.State != from {
				t.Fatalf("unblocked: state %s, want %s", r.State, from)
			}
		})
	}
}
