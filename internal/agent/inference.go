package agent

import (
	"context"
	"time"

	"github.com/coconut-os/coconut/api"
	"github.com/coconut-os/coconut/internal/capability"
	"github.com/coconut-os/coconut/internal/inferkey"
	"github.com/coconut-os/coconut/internal/peer"
	"github.com/coconut-os/coconut/internal/policy"
	"github.com/coconut-os/coconut/internal/state"
)

// Inference is what the broker needs to know about one agent, read from
// its record on every request: grants, revokes and quota changes take
// effect on the next call.
type Inference struct {
	AID    uint64
	Weight int // the cpu weight quota; 100 when unset
	// Models reports whether the agent's inference capabilities allow a
	// model; nil when it holds none.
	Models     func(model string) bool
	TokenLimit int64 // lowest of the tokens quota and the caps' tokens=; 0: none
	TokensUsed int64 // lifetime tokens, persisted in the record
	KVBytes    int64 // HBM tier left after agent_memory_tier allocations; 0: no tier
	// UID is the agent's user; UserTokensUsed what all of that user's
	// agents, running or ended, have spent: the per-user budget's count.
	UID            uint32
	UserTokensUsed int64
}

// Tenants is the registry as the inference broker sees it
// (Manager.Tenants): which running agent a key or a socket's cgroup
// belongs to, what an agent may call and spend (Inference), the tokens it
// spent, and its Inference-blocked state. It owns the agents' inference
// keys (inferkey.Keys: the index of their hashes, the pacing of
// token-usage saves); everything else it reads from the records on each
// call, so grants, revokes and quota changes take effect on the next one.
type Tenants struct {
	m    *Manager
	keys inferkey.Keys
}

// Tenants is the broker's view of the agents.
func (m *Manager) Tenants() *Tenants { return &m.tenants }

// newKey makes the agent's key when a broker is configured and sets its
// hash in rec; the key itself goes only into the agent's environment.
func (t *Tenants) newKey(rec *record) (string, error) {
	if !t.m.cfg.Broker.Addr.IsValid() {
		return "", nil
	}
	key, hash, err := peer.NewKey()
	if err != nil {
		return "", api.Errorf(api.ErrInternal, "agent %d: %v", rec.AID, err)
	}
	rec.KeyHash = hash
	return key, nil
}

// indexKey makes rec's key valid (at spawn, and for adopted agents, whose
// environment still holds the key they were given).
func (m *Manager) indexKey(rec *record) { m.tenants.keys.Index(rec.KeyHash, rec.AID) }

// ended forgets an ended agent's key and tells the broker.
func (t *Tenants) ended(rec *record) { t.keys.Ended(rec.KeyHash, rec.AID) }

// OnEnd sets what runs when an agent ends (the broker forgets it).
func (t *Tenants) OnEnd(f func(aid uint64)) { t.keys.OnEnd(f) }

// AIDOfKey returns the running agent whose inference key hashes to hash.
func (t *Tenants) AIDOfKey(hash string) (uint64, bool) { return t.keys.AID(hash) }

// AIDOfCgroup returns the running agent whose cgroup has id cgroupID.
func (t *Tenants) AIDOfCgroup(cgroupID uint64) (uint64, bool) {
	m := t.m
	m.mu.Lock()
	defer m.mu.Unlock()
	aid, ok := m.byCgroup[cgroupID]
	if !ok {
		return 0, false
	}
	e, ok := m.agents[aid]
	if !ok || e.rec.CgroupID != cgroupID || e.rec.State.Terminal() {
		return 0, false
	}
	return aid, true
}

// Inference returns what the broker schedules agent aid by. An agent that
// is not running (quarantined, ended, unknown) gets an error.
func (t *Tenants) Inference(aid uint64) (Inference, error) {
	m := t.m
	m.mu.Lock()
	e, ok := m.agents[aid]
	var r record
	var userUsed int64
	if ok {
		r = *e.rec
		for _, o := range m.agents {
			if o.rec.UID == r.UID {
				userUsed += o.rec.TokensUsed
			}
		}
	}
	m.mu.Unlock()
	if !ok {
		return Inference{}, api.Errorf(api.ErrNotFound, "no agent %d", aid)
	}
	// Attested counts as running here: the program is launched before its
	// Active row is written (spawn.go), and only the launched program has
	// the agent's broker key, so its first call can arrive in between
	// (seen as a 403 on that call under load, issue 19's bench). If the
	// Active row then fails, the agent is ended.
	if !r.State.Running() && r.State != state.Attested {
		return Inference{}, api.Errorf(api.ErrConflict, "agent %d is %s", aid, r.State)
	}
	inf := Inference{AID: aid, Weight: r.Quota.CPUWeight, TokenLimit: r.Quota.Tokens, TokensUsed: r.TokensUsed, UID: r.UID, UserTokensUsed: userUsed}
	if inf.Weight <= 0 {
		inf.Weight = 100
	}
	var caps []capability.Cap
	for _, s := range r.Caps {
		c, err := capability.Parse(s)
		if err != nil || c.Domain != "inference" {
			continue
		}
		caps = append(caps, c)
		// Several inference caps: the lowest token cap binds them all,
		// since the broker keeps one budget per agent (fail closed).
		if t := c.Tokens(); t > 0 && (inf.TokenLimit == 0 || t < inf.TokenLimit) {
			inf.TokenLimit = t
		}
	}
	if len(caps) > 0 {
		inf.Models = func(model string) bool {
			return policy.Decide(policy.Bundle{Caps: caps}, policy.Model{Name: model}).Allow
		}
	}
	if r.Memory.HBM > 0 {
		// The KV cache lives in HBM: what agent_memory_tier has not
		// handed out bounds the agent's in-flight context. A tier fully
		// allocated leaves 1 byte, not 0, which would mean "no limit".
		inf.KVBytes = max(r.Memory.HBM-r.HBMUsed, 1)
	}
	return inf, nil
}

// AddTokens records tokens an agent spent through the broker. The record
// is rewritten at most once per inferkey.SaveEvery for this alone.
func (t *Tenants) AddTokens(aid uint64, tokens int64) {
	if tokens <= 0 {
		return
	}
	m := t.m
	m.mu.Lock()
	e, ok := m.agents[aid]
	if !ok {
		m.mu.Unlock()
		return
	}
	e.rec.TokensUsed += tokens
	m.mu.Unlock()
	if t.keys.Spent(aid, time.Now(), t.flush) { // at most once per inferkey.SaveEvery
		if err := m.persist(e); err != nil {
			m.log.Warn("persist token usage", "aid", aid, "err", err)
		}
	}
}

// flush writes one agent's token usage if it is still unsaved.
func (t *Tenants) flush(aid uint64) {
	if !t.keys.TakeDirty(aid) {
		return
	}
	if e := t.m.get(aid); e != nil {
		if err := t.m.persist(e); err != nil {
			t.m.log.Warn("persist token usage", "aid", aid, "err", err)
		}
	}
}

// FlushTokens writes the records whose token usage is not saved yet (at
// shutdown).
func (t *Tenants) FlushTokens() {
	for _, aid := range t.keys.TakeAllDirty() {
		if e := t.m.get(aid); e != nil {
			if err := t.m.persist(e); err != nil {
				t.m.log.Warn("persist token usage", "aid", aid, "err", err)
			}
		}
	}
}

// SetBlocked moves an agent that waits for its token or KV
// budget to Inference-blocked, and back to Active when it no longer
// waits. The transition writes the audit row first. An agent in another
// state (quarantined, ended) is left as it is.
func (t *Tenants) SetBlocked(aid uint64, blocked bool, reason string) error {
	m := t.m
	e := m.get(aid)
	if e == nil {
		return api.Errorf(api.ErrNotFound, "no agent %d", aid)
	}
	e.trans.Lock()
	defer e.trans.Unlock()
	m.mu.Lock()
	st := e.rec.State
	m.mu.Unlock()
	switch {
	case blocked && (st == state.Active || st == state.CapabilityDenied):
		if reason == "" {
			reason = "waiting for its inference budget"
		}
		e.blockedFrom = st
		return m.transition(context.Background(), e, state.InferenceBlocked, reason, nil)
	case !blocked && st == state.InferenceBlocked:
		// Back to where it was: a denial it had is not forgotten.
		to := state.Active
		if e.blockedFrom == state.CapabilityDenied {
			to = state.CapabilityDenied
		}
		return m.transition(context.Background(), e, to, "inference budget available", nil)
	}
	return nil
}
