package agent

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coconut-os/coconut/api"
	"github.com/coconut-os/coconut/internal/capability"
	"github.com/coconut-os/coconut/internal/peer"
	"github.com/coconut-os/coconut/internal/policy"
	"github.com/coconut-os/coconut/internal/state"
)

// Broker is where agents reach coconutd's inference broker. The zero
// value means no broker: agents get no inference environment.
type Broker struct {
	Socket string         // the broker's Unix socket, told as COCONUT_BROKER_SOCKET
	Addr   netip.AddrPort // its loopback TCP address, told as OPENAI_BASE_URL
}

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

// tokenSaveEvery bounds how often token usage alone rewrites an agent's
// record: a busy agent settles many calls a second. An unsaved count is
// written by a timer within this time, or earlier by any other save (a
// transition, the agent's end, FlushTokens at shutdown), so a daemon crash
// loses at most this much of the count; the audit chain still holds every
// call.
const tokenSaveEvery = time.Second

// inference is the manager's broker-side state.
type inference struct {
	mu    sync.Mutex
	keys  map[string]uint64 // key hash → AID, running agents only
	saved map[uint64]time.Time
	dirty map[uint64]bool
	onEnd func(aid uint64)
}

// brokerEnv is the environment that points an agent at the broker: an
// unmodified OpenAI client needs only OPENAI_BASE_URL and OPENAI_API_KEY.
func (b Broker) env(key string) []string {
	var env []string
	if b.Addr.IsValid() {
		env = append(env, "OPENAI_BASE_URL=http://"+b.Addr.String()+"/v1", "OPENAI_API_KEY="+key)
	}
	if b.Socket != "" {
		env = append(env, "COCONUT_BROKER_SOCKET="+b.Socket)
	}
	return env
}

// withEnv replaces (not duplicates) the variables add names: glibc's
// getenv returns the first match, so a manifest's OPENAI_API_KEY must not
// sit before coconut's.
func withEnv(env, add []string) []string {
	names := make([]string, len(add))
	for i, kv := range add {
		names[i], _, _ = strings.Cut(kv, "=")
	}
	out := slices.DeleteFunc(env, func(kv string) bool {
		n, _, _ := strings.Cut(kv, "=")
		return slices.Contains(names, n)
	})
	return append(out, add...)
}

// newInferenceKey makes the agent's key when a broker is configured and
// indexes its hash; the key itself goes only into the agent's
// environment.
func (m *Manager) newInferenceKey(rec *record) (string, error) {
	if !m.cfg.Broker.Addr.IsValid() {
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
func (m *Manager) indexKey(rec *record) {
	if rec.KeyHash == "" {
		return
	}
	m.inf.mu.Lock()
	defer m.inf.mu.Unlock()
	if m.inf.keys == nil {
		m.inf.keys = map[string]uint64{}
	}
	m.inf.keys[rec.KeyHash] = rec.AID
}

// inferenceEnded forgets an ended agent's key and tells the broker.
func (m *Manager) inferenceEnded(rec *record) {
	m.inf.mu.Lock()
	if rec.KeyHash != "" {
		delete(m.inf.keys, rec.KeyHash)
	}
	delete(m.inf.saved, rec.AID)
	delete(m.inf.dirty, rec.AID)
	f := m.inf.onEnd
	m.inf.mu.Unlock()
	if f != nil {
		f(rec.AID)
	}
}

// OnInferenceEnd sets what runs when an agent ends (the broker forgets it).
func (m *Manager) OnInferenceEnd(f func(aid uint64)) {
	m.inf.mu.Lock()
	m.inf.onEnd = f
	m.inf.mu.Unlock()
}

// AIDOfKey returns the running agent whose inference key hashes to hash.
func (m *Manager) AIDOfKey(hash string) (uint64, bool) {
	m.inf.mu.Lock()
	defer m.inf.mu.Unlock()
	aid, ok := m.inf.keys[hash]
	return aid, ok
}

// AIDOfCgroup returns the running agent whose cgroup has id cgroupID.
func (m *Manager) AIDOfCgroup(cgroupID uint64) (uint64, bool) {
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
func (m *Manager) Inference(aid uint64) (Inference, error) {
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
	if !r.State.Running() {
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
// is rewritten at most once per tokenSaveEvery for this alone.
func (m *Manager) AddTokens(aid uint64, tokens int64) {
	if tokens <= 0 {
		return
	}
	m.mu.Lock()
	e, ok := m.agents[aid]
	if !ok {
		m.mu.Unlock()
		return
	}
	e.rec.TokensUsed += tokens
	m.mu.Unlock()
	now := time.Now()
	m.inf.mu.Lock()
	if m.inf.saved == nil {
		m.inf.saved, m.inf.dirty = map[uint64]time.Time{}, map[uint64]bool{}
	}
	due := now.Sub(m.inf.saved[aid]) >= tokenSaveEvery
	if due {
		m.inf.saved[aid] = now
		delete(m.inf.dirty, aid)
	} else if !m.inf.dirty[aid] {
		// The count is saved within tokenSaveEvery even if this was the
		// agent's last call: the timer writes it unless a save came first.
		m.inf.dirty[aid] = true
		time.AfterFunc(tokenSaveEvery, func() { m.flushTokens(aid) })
	}
	m.inf.mu.Unlock()
	if due {
		if err := m.persist(e); err != nil {
			m.log.Warn("persist token usage", "aid", aid, "err", err)
		}
	}
}

// flushTokens writes one agent's token usage if it is still unsaved.
func (m *Manager) flushTokens(aid uint64) {
	m.inf.mu.Lock()
	dirty := m.inf.dirty[aid]
	if dirty {
		delete(m.inf.dirty, aid)
		m.inf.saved[aid] = time.Now()
	}
	m.inf.mu.Unlock()
	if !dirty {
		return
	}
	m.mu.Lock()
	e, ok := m.agents[aid]
	m.mu.Unlock()
	if ok {
		if err := m.persist(e); err != nil {
			m.log.Warn("persist token usage", "aid", aid, "err", err)
		}
	}
}

// FlushTokens writes the records whose token usage is not saved yet (at
// shutdown).
func (m *Manager) FlushTokens() {
	m.inf.mu.Lock()
	aids := make([]uint64, 0, len(m.inf.dirty))
	for aid := range m.inf.dirty {
		aids = append(aids, aid)
	}
	clear(m.inf.dirty)
	m.inf.mu.Unlock()
	for _, aid := range aids {
		m.mu.Lock()
		e, ok := m.agents[aid]
		m.mu.Unlock()
		if ok {
			if err := m.persist(e); err != nil {
				m.log.Warn("persist token usage", "aid", aid, "err", err)
			}
		}
	}
}

// SetInferenceBlocked moves an agent that waits for its token or KV
// budget to Inference-blocked, and back to Active when it no longer
// waits. The transition writes the audit row first. An agent in another
// state (quarantined, ended) is left as it is.
func (m *Manager) SetInferenceBlocked(aid uint64, blocked bool, reason string) error {
	m.mu.Lock()
	e, ok := m.agents[aid]
	m.mu.Unlock()
	if !ok {
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

// brokerCaps adds the implicit rule an inference capability brings: the
// agent may connect to the broker's TCP address, which its net.connect
// caps need not name (and `agent caps` does not show). The backend's own
// address is never added: agents reach inference only through the broker.
func (m *Manager) brokerCaps(caps []capability.Cap) []capability.Cap {
	addr := m.cfg.Broker.Addr
	if !addr.IsValid() || !slices.ContainsFunc(caps, func(c capability.Cap) bool { return c.Domain == "inference" }) {
		return caps
	}
	c, err := capability.Parse("net.connect:" + addr.String())
	if err != nil {
		m.log.Error("broker address is not a capability scope", "addr", addr, "err", err)
		return caps
	}
	return append(slices.Clip(caps), c)
}
