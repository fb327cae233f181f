package agent

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/coconut-os/coconut/api"
	"github.com/coconut-os/coconut/internal/audit"
	"github.com/coconut-os/coconut/internal/audit/gate"
	"github.com/coconut-os/coconut/internal/cgroup"
	"github.com/coconut-os/coconut/internal/config"
	"github.com/coconut-os/coconut/internal/enforce"
	"github.com/coconut-os/coconut/internal/inferkey"
	"github.com/coconut-os/coconut/internal/launch"
	"github.com/coconut-os/coconut/internal/measure"
	"github.com/coconut-os/coconut/internal/quota"
	"github.com/coconut-os/coconut/internal/sign"
	"github.com/coconut-os/coconut/internal/state"
	"github.com/coconut-os/coconut/internal/storm"
)

// Config wires a Manager to the rest of the daemon.
type Config struct {
	StateDir        string            // agents are persisted in StateDir/agents
	Tree            *cgroup.Tree      // Coconut's subtree: where the quota controllers are found
	Quota           *quota.Controller // the agents' budgets; nil: quota.New(Tree.Mount, Tree.Root) (deps.go)
	Cgroups         Cgroups           // the agents' cgroups (deps.go); nil: Groups{Tree}
	Chain           Chain             // the audit chain (deps.go), an *audit.Chain
	Trust           *sign.Trust
	HostKey         ed25519.PrivateKey
	HostID          string
	Self            string           // the trampoline binary (the daemon's own executable)
	Socket          string           // told to agents as COCONUT_SOCKET
	WorkstationUser string           // config: whom root's agents run as
	DemoUser        string           // when root asks and no workstation user is set
	Enforcer        string           // the backend's name, recorded in attestations
	Enforce         enforce.Enforcer // nil: no backend could load, and agents must not start
	EnforceWhy      string           // why that backend, or why none
	Broker          inferkey.Broker  // the inference broker agents are pointed at (internal/inferkey); zero: none
	QuotaDefaults   config.Defaults  // every agent's budget for what it leaves unset (budget.go); zero: none
	AuditReserve    int64            // free bytes kept on the chain's filesystem (reserve.go); 0: DefaultAuditReserve
	StormDefault    storm.Policy     // on_deny_storm for what an agent leaves unset (storm.go); zero: storm.Default
	LogMax          int64            // agent_log_max: each agent's log cap in bytes (logcap.go); 0: DefaultLogMax
	Retention       time.Duration    // agent_retention: ended agents pruned this long after they ended (prune.go); 0: kept
	AuditEachUse    bool             // audit_each_use: one row per allowed use, none counted (aggregate.go)
	BeforeEnd       func(aid uint64) // runs before an agent's terminal state row (the broker's pending rows); nil: none
	Launch          Launcher         // starts an agent's first process (deps.go); nil: launch.Start
	Log             *slog.Logger
}

// Caller is who made an API call, as the kernel says (SO_PEERCRED), and the
// agent it is, if any.
type Caller struct {
	UID uint32
	PID int
	AID uint64 // 0: not an agent
	// Via names the door the call came through when it is not the Unix
	// API ("center"); it is written into the rows of the changes it makes.
	Via string
}

// Manager owns every agent of this daemon.
type Manager struct {
	cfg     Config
	log     *slog.Logger
	store   store
	aids    *allocator
	plans   planner     // requests into plans: trust, users, measured programs (plan.go)
	reserve reserve     // the audit chain's disk headroom (reserve.go)
	sup     supervision // the seccomp supervisor's side (supervision.go)
	budget  budget      // issue 5: cgroup limits, usage, memory tiers, OOM watch, governor (budget.go)
	grants  grants      // capability changes and delegation, with the lock ordering them (caps.go)

	mu       sync.Mutex
	agents   map[uint64]*entry
	byCgroup map[uint64]uint64 // cgroup id → AID, for kernel events

	tenants Tenants // the broker's view: inference keys, tokens, Inference-blocked (inference.go)

	counts     counterState  // chain deny rows by source, the counters alarm (counters.go)
	agg        aggregator    // pending aggregate deny rows (aggregate.go); the consumer's own
	storm      stormWatch    // deny storm detectors and actions (storm.go)
	aggFlushed chan struct{} // closed once the consumer wrote them at Close
	aggReq     chan aggFlushReq

	wg     sync.WaitGroup // watchers
	stop   chan struct{}
	closed bool

	// reapers counts the watchChild goroutines. Close does not wait for
	// them (their agents outlive the daemon); whoever ends those agents
	// afterwards (a test killing what it started) waits here for the last
	// save of their records.
	reapers sync.WaitGroup
}

// entry is one agent in memory. rec is guarded by Manager.mu; the
// transition lock orders state changes of this agent.
type entry struct {
	rec    *record
	trans  sync.Mutex
	saveMu sync.Mutex // serialises writes of rec to disk (persist)
	// blockedFrom is the state an Inference-blocked agent returns to
	// (Active or Capability-denied); guarded by trans.
	blockedFrom state.State
	stopped     chan struct{} // closed when the main process has been seen to end
	group       *cgroup.Group
}

// New loads the registry and adopts the agents still running.
func New(cfg Config) (*Manager, error) {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.DemoUser == "" {
		cfg.DemoUser = "coconut-demo"
	}
	if cfg.Cgroups == nil {
		cfg.Cgroups = Groups{Tree: cfg.Tree}
	}
	if cfg.Launch == nil {
		cfg.Launch = launch.Start
	}
	st := store{dir: cfg.StateDir + "/agents"}
	if err := os.MkdirAll(st.dir, 0o700); err != nil {
		return nil, fmt.Errorf("create agent store: %w", err)
	}
	recs, err := st.load()
	if err != nil {
		return nil, err
	}
	var maxAID uint64
	for _, r := range recs {
		maxAID = max(maxAID, r.AID)
	}
	// The registry is a witness beside aid.hw, and the chain one when
	// aid.hw is gone (a pruned agent is only in the chain).
	aids, err := openAllocator(cfg.StateDir, maxAID, func() (uint64, error) { return highestSpawnedAID(cfg.Chain) })
	if err != nil {
		return nil, err
	}
	m := &Manager{
		cfg: cfg, log: cfg.Log, store: st, aids: aids, reserve: reserve{dir: cfg.StateDir, bytes: cfg.AuditReserve},
		agents: map[uint64]*entry{}, byCgroup: map[uint64]uint64{}, stop: make(chan struct{}),
	}
	m.tenants.m, m.grants.m = m, m
	for _, r := range recs {
		m.agents[r.AID] = &entry{rec: r, stopped: make(chan struct{})}
	}
	// Quota (issue 5): find the controllers for this subtree, and the
	// directory the SSD tiers are mounted under.
	m.budget = budget{ctl: cfg.Quota, scratch: filepath.Join(cfg.StateDir, "scratch"), defaults: cfg.QuotaDefaults, log: cfg.Log}
	if m.budget.ctl == nil {
		if m.budget.ctl, err = quota.New(cfg.Tree.Mount, cfg.Tree.Root); err != nil {
			return nil, fmt.Errorf("quota controller: %w", err)
		}
	}
	if mode := m.budget.ctl.Mode(); mode != quota.ModeV2 {
		m.log.Warn("cgroup controllers", "mode", mode, "why", m.budget.ctl.Why())
	}
	m.sup = supervision{enf: cfg.Enforce, cgroups: cfg.Cgroups, chain: cfg.Chain, log: cfg.Log}
	m.plans = planner{trust: cfg.Trust, cache: measure.NewCache(), budget: &m.budget,
		users: users{workstation: cfg.WorkstationUser, demo: cfg.DemoUser, log: cfg.Log}}
	if err := os.MkdirAll(m.budget.scratch, 0o711); err != nil {
		return nil, fmt.Errorf("create scratch dir: %w", err)
	}
	// Denies (and the allowed uses the supervisor must record) flow as soon
	// as adopted agents are served again: consume them before adopting, or
	// a slow adoption leaves their calls waiting on an unread channel.
	if err := m.initCounters(); err != nil { // counters.go
		return nil, err
	}
	if cfg.Enforce != nil {
		m.aggFlushed, m.aggReq = make(chan struct{}), make(chan aggFlushReq)
		m.agg.eachUse = cfg.AuditEachUse
		go m.consumeDenies()
		m.wg.Add(1)
		go m.reconcile()
	}
	if err := m.adoptAll(); err != nil {
		return nil, err
	}
	m.watch()
	return m, nil
}

// watch starts the loops that run over the registry until Close: the OOM
// watch and the CPU governor (budget.go, issue 5), the log cap
// (logcap.go) and the retention (prune.go, issue 17).
func (m *Manager) watch() {
	started := func(keep func(state.State) bool) []record {
		return m.records(func(r *record) bool { return keep(r.State) && r.PID > 0 })
	}
	end := func(aid uint64, reason string) {
		if e := m.get(aid); e != nil {
			m.revoke(e, reason)
		}
	}
	aids := func() []uint64 {
		var out []uint64
		for _, r := range m.records(nil) {
			out = append(out, r.AID)
		}
		return out
	}
	m.wg.Add(4)
	go func() { defer m.wg.Done(); m.budget.watchOOM(m.stop, started, end) }()
	go func() { defer m.wg.Done(); m.budget.governCPU(m.stop, started) }()
	go func() { defer m.wg.Done(); capLogs(m.stop, m.cfg.LogMax, m.store, aids, m.log) }()
	go func() { defer m.wg.Done(); retain(m.stop, m.cfg.Retention, m.Prune, m.log) }()
}

// Close stops watching agents. It does not stop them: agents outlive the
// daemon, and the next one adopts them.
func (m *Manager) Close() {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	m.closed = true
	close(m.stop)
	m.mu.Unlock()
	if m.aggFlushed != nil {
		select { // aggregate.go: pending aggregate rows written before the daemon goes
		case <-m.aggFlushed:
		case <-time.After(5 * time.Second):
		}
	}
	m.wg.Wait()
}

// audit appends a row for agent aid. Its error means the operation it
// records must not proceed.
func (m *Manager) audit(ctx context.Context, r audit.Record) error {
	return gate.Append(ctx, m.cfg.Chain, r)
}

// transition moves e to state to: checks the table, writes the audit row,
// then persists. The row comes first: if it cannot be written the state
// does not change. The caller holds e.trans.
func (m *Manager) transition(ctx context.Context, e *entry, to state.State, reason string, mutate func(*record)) error {
	return m.transitionWith(ctx, e, to, reason, nil, mutate)
}

// transitionWith is transition with extra detail for its row (who asked).
func (m *Manager) transitionWith(ctx context.Context, e *entry, to state.State, reason string, extra map[string]string, mutate func(*record)) error {
	m.mu.Lock()
	from := e.rec.State
	pid := e.rec.PID
	if mutate != nil {
		// The row names the pid the change records (Active's is the
		// process just started), so read it from the record as mutate
		// leaves it; the record itself changes only once the row is
		// durable. A mutate sets fields; it is run on a shallow copy.
		cp := *e.rec
		mutate(&cp)
		pid = cp.PID
	}
	m.mu.Unlock()
	if err := state.Transition(from, to); err != nil {
		return api.Errorf(api.ErrConflict, "agent %d: %v", e.rec.AID, err)
	}
	if to.Terminal() {
		// Its pending aggregate rows (uses, denies, inference calls) come
		// before its end: no count of an ended agent appears later.
		m.flushAgent(e.rec.AID) // aggregate.go
		if m.cfg.BeforeEnd != nil {
			m.cfg.BeforeEnd(e.rec.AID)
		}
	}
	detail := map[string]string{"from": string(from)}
	for k, v := range extra {
		detail[k] = v
	}
	if reason != "" {
		detail["reason"] = reason
	}
	if err := m.audit(ctx, audit.AgentState(e.rec.AID, string(to), pid, detail)); err != nil {
		return err
	}
	m.mu.Lock()
	e.rec.State = to
	if reason != "" {
		e.rec.Reason = reason
	}
	if to.Terminal() && e.rec.EndTime.IsZero() {
		e.rec.EndTime = time.Now().UTC()
	}
	if mutate != nil {
		mutate(e.rec)
	}
	m.mu.Unlock()
	return m.persist(e)
}

// persist writes e's record as it is now. Saves of one record are
// serialised and each copies the record inside that order, so the last
// write on disk is never an older copy than one already written: a token
// count saved late cannot bring back capabilities a revoke removed, nor a
// state the agent has left.
func (m *Manager) persist(e *entry) error {
	e.saveMu.Lock()
	defer e.saveMu.Unlock()
	m.mu.Lock()
	cp := *e.rec
	cp.Delegated = maps.Clone(e.rec.Delegated) // encoded outside m.mu
	m.mu.Unlock()
	return m.store.save(&cp)
}

// visible reports whether caller may see agent r: root sees all, a user
// the agents they authorized, an agent itself.
func visible(caller Caller, r *record) bool {
	if caller.AID != 0 {
		return caller.AID == r.AID
	}
	return caller.UID == 0 || caller.UID == r.Owner
}

// get returns agent aid, nil if the registry has none.
func (m *Manager) get(aid uint64) *entry {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.agents[aid]
}

// records copies the records that keep (nil: all) passes, read under
// m.mu, for the loops that work on agents without changing them.
func (m *Manager) records(keep func(*record) bool) []record {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []record
	for _, e := range m.agents {
		if keep == nil || keep(e.rec) {
			out = append(out, *e.rec)
		}
	}
	return out
}

// aidOfCgroupLocked finds the agent whose record names cgroup id cg (0 if
// none). The caller holds m.mu.
func (m *Manager) aidOfCgroupLocked(cg uint64) uint64 {
	for aid, e := range m.agents {
		if e.rec.CgroupID == cg {
			return aid
		}
	}
	return 0
}

// lookup returns agent aid if caller may see it.
func (m *Manager) lookup(caller Caller, aid uint64) (*entry, error) {
	e := m.get(aid)
	if e == nil || !visible(caller, e.rec) {
		// Not found and not yours look the same: AIDs are not secrets, but
		// another user's agents are none of the caller's business.
		return nil, api.Errorf(api.ErrNotFound, "no agent %d", aid)
	}
	return e, nil
}

// List returns the agents caller may see; all includes ended ones.
func (m *Manager) List(caller Caller, all bool) []api.Agent {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []api.Agent{}
	for _, e := range m.agents {
		if !visible(caller, e.rec) || (!all && e.rec.State.Terminal()) {
			continue
		}
		out = append(out, e.rec.wire(m.store.logPath(e.rec.AID)))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].AID < out[j].AID })
	return out
}

// Get returns one agent.
func (m *Manager) Get(caller Caller, aid uint64) (*api.Agent, error) {
	e, err := m.lookup(caller, aid)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	a := e.rec.wire(m.store.logPath(aid))
	m.mu.Unlock()
	return &a, nil
}

// SeesRow is the visibility rule of audit rows, shared by the audit query,
// its proofs and the event stream: root outside any agent sees every row
// (the daemon's own rows, AID 0, included); anyone else the rows of the
// agents they may see.
func (m *Manager) SeesRow(caller Caller, aid uint64) bool {
	if caller.UID == 0 && caller.AID == 0 {
		return true
	}
	if aid == 0 {
		return false
	}
	_, err := m.lookup(caller, aid)
	return err == nil
}

// Caps returns the agent's current capabilities, ~ expanded.
func (m *Manager) Caps(caller Caller, aid uint64) ([]string, error) {
	e, err := m.lookup(caller, aid)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string{}, e.rec.Caps...), nil
}

// Ceiling returns the most the agent's bundle may grow to while it runs
// (its kernel floor), ~ expanded like Caps.
func (m *Manager) Ceiling(caller Caller, aid uint64) ([]string, error) {
	e, err := m.lookup(caller, aid)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if e.rec.Ceiling == nil {
		return append([]string{}, e.rec.Caps...), nil
	}
	return append([]string{}, e.rec.Ceiling...), nil
}

// LogPath returns the file holding the agent's stdout and stderr.
func (m *Manager) LogPath(caller Caller, aid uint64) (string, error) {
	if _, err := m.lookup(caller, aid); err != nil {
		return "", err
	}
	return m.store.logPath(aid), nil
}

// Attestation returns the agent's signed attestation.
func (m *Manager) Attestation(caller Caller, aid uint64) (*api.Attestation, error) {
	if _, err := m.lookup(caller, aid); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(m.store.attestPath(aid))
	if err != nil {
		return nil, api.Errorf(api.ErrNotFound, "agent %d has no attestation: %v", aid, err)
	}
	return &api.Attestation{AID: aid, HostKeyID: sign.KeyID(m.cfg.HostKey.Public().(ed25519.PublicKey)), Envelope: b}, nil
}

// Running counts agents that are not terminated.
func (m *Manager) Running() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, e := range m.agents {
		if !e.rec.State.Terminal() {
			n++
		}
	}
	return n
}
