package agent

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/coconut-os/coconut/api"
	"github.com/coconut-os/coconut/internal/atomicfile"
	"github.com/coconut-os/coconut/internal/attest"
	"github.com/coconut-os/coconut/internal/audit"
	"github.com/coconut-os/coconut/internal/enforce"
	"github.com/coconut-os/coconut/internal/inferkey"
	"github.com/coconut-os/coconut/internal/launch"
	"github.com/coconut-os/coconut/internal/quota"
	"github.com/coconut-os/coconut/internal/sign"
	"github.com/coconut-os/coconut/internal/state"
)

// spawnWorkers bounds how many agents of one request start at once. The
// audit chain's group commit batches their rows; more parallelism than this
// only adds scheduler noise on a small machine.
const spawnWorkers = 8

// Spawn is agent_spawn: verify, parse, plan every agent, then start them.
// A refused manifest is recorded in the chain and nothing is started.
func (m *Manager) Spawn(ctx context.Context, caller Caller, req api.SpawnRequest) ([]api.Agent, error) {
	caller, parent, err := m.grants.spawnCaller(caller) // delegate.go: an agent spawns for the user who authorized it
	if err != nil {
		return nil, err
	}
	if parent != nil {
		m.grants.deleg.Lock()
		defer m.grants.deleg.Unlock()
	}
	if err := m.reserve.check(); err != nil { // reserve.go
		return nil, err
	}
	plans, err := m.plans.manifest(caller, req)
	if err == nil {
		if err = m.grants.delegatePlans(parent, plans); err != nil {
			m.plans.release(plans)
		}
	}
	if err != nil {
		if aerr := m.audit(ctx, audit.SpawnRefused(req.File, caller.UID, err.Error())); aerr != nil {
			m.log.Error("record refused spawn", "err", aerr)
		}
		return nil, err
	}
	return m.startAll(ctx, caller, plans)
}

// Run is `coconut agent run`: one agent from a command line.
func (m *Manager) Run(ctx context.Context, caller Caller, req api.RunRequest) (*api.Agent, error) {
	caller, parent, err := m.grants.spawnCaller(caller) // delegate.go
	if err != nil {
		return nil, err
	}
	if parent != nil {
		m.grants.deleg.Lock()
		defer m.grants.deleg.Unlock()
	}
	if parent != nil && req.User == "" {
		req.User = parent.rec.User // an agent's children run as its own user
	}
	if err := m.reserve.check(); err != nil { // reserve.go
		return nil, err
	}
	p, err := m.plans.run(caller, req)
	if err == nil {
		if err = m.grants.delegatePlans(parent, []*plan{p}); err != nil {
			m.plans.release([]*plan{p})
		}
	}
	if err != nil {
		return nil, err
	}
	out, err := m.startAll(ctx, caller, []*plan{p})
	if err != nil {
		return nil, err
	}
	return &out[0], nil
}

// startAll starts every plan; if one fails, the ones already started are
// ended (Terminated-revoked) so a workload is all or nothing.
func (m *Manager) startAll(ctx context.Context, caller Caller, plans []*plan) ([]api.Agent, error) {
	defer m.plans.release(plans)
	// No enforcer, no agent: refuse before any AID, cgroup or row exists.
	if m.cfg.Enforce == nil {
		return nil, api.Errorf(api.ErrUnavailable, "no capability enforcer is loaded (%s): agents do not start", m.cfg.EnforceWhy)
	}
	if err := m.budget.check(plans); err != nil { // issue 5: refuse limits this host cannot enforce
		return nil, err
	}
	aids := make([]uint64, len(plans))
	for i := range plans {
		aid, err := m.aids.Next()
		if err != nil {
			return nil, api.Errorf(api.ErrUnavailable, "%v", err)
		}
		aids[i] = aid
	}
	entries := make([]*entry, len(plans))
	errs := make([]error, len(plans))
	var wg sync.WaitGroup
	sem := make(chan struct{}, spawnWorkers)
	for i, p := range plans {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			entries[i], errs[i] = m.startOne(ctx, p, aids[i])
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, e := range entries {
			if e != nil {
				m.revoke(e, "another agent of the same request failed to start")
			}
		}
		return nil, err
	}
	out := make([]api.Agent, len(entries))
	for i, e := range entries {
		m.mu.Lock()
		out[i] = e.rec.wire(m.store.logPath(e.rec.AID))
		m.mu.Unlock()
	}
	return out, nil
}

// startOne takes one agent from Spawning through Attested to Active. Every
// step is an audit row written before the step takes effect.
func (m *Manager) startOne(ctx context.Context, p *plan, aid uint64) (*entry, error) {
	g, err := m.cfg.Cgroups.Create(aid)
	if err != nil {
		return nil, api.Errorf(api.ErrInternal, "agent %s: %v", p.name, err)
	}
	rec := &record{
		AID: aid, Name: p.name, Class: p.class, Workload: p.workload, State: state.Spawning,
		CgroupID: g.ID, CgroupPath: g.Path, User: p.user.Name, UID: p.user.UID, GID: p.user.GID,
		Owner: p.owner, Command: p.command, Caps: p.caps, Ceiling: p.ceiling, Quota: p.quota, Memory: p.memory, Audit: p.audit, Storm: p.storm, Static: p.static, Parent: p.parent, Delegated: p.delegated,
		BinarySHA: p.exe.SHA256, SpawnTime: time.Now().UTC(),
	}
	if rec.Caps == nil {
		rec.Caps = []string{}
	}
	key, err := m.tenants.newKey(rec) // inference.go: the broker key, only its hash is kept
	if err != nil {
		m.cfg.Cgroups.Remove(g)
		return nil, err
	}
	if rec.Ceiling == nil {
		// No declared ceiling: the initial bundle is the ceiling, so the
		// floor and later grants are bounded by it.
		rec.Ceiling = append([]string{}, rec.Caps...)
	}
	e := &entry{rec: rec, stopped: make(chan struct{}), group: g}
	e.trans.Lock()
	defer e.trans.Unlock()

	detail := map[string]string{
		"name": p.name, "class": p.class, "user": p.user.Name, "binary_sha256": p.exe.SHA256,
		"cgroup_id": strconv.FormatUint(g.ID, 10), "authorizer_uid": strconv.FormatUint(uint64(p.owner), 10),
		"via": p.authorizer.Via,
	}
	if p.workload != "" {
		detail["workload"] = p.workload
	}
	if err := m.audit(ctx, audit.AgentSpawn(aid, p.command[0], detail)); err != nil {
		m.cfg.Cgroups.Remove(g)
		return nil, err
	}
	if err := m.store.save(rec); err != nil {
		m.cfg.Cgroups.Remove(g)
		return nil, api.Errorf(api.ErrInternal, "%v", err)
	}
	m.mu.Lock()
	m.agents[aid] = e
	m.mu.Unlock()

	fail := func(err error) (*entry, error) {
		m.endLocked(e, state.TerminatedRevoked, fmt.Sprintf("spawn failed: %v", err), nil)
		return nil, err
	}
	if err := m.attest(ctx, p, rec); err != nil {
		return fail(err)
	}
	if err := m.transition(ctx, e, state.Attested, "", nil); err != nil {
		return fail(err)
	}
	if err := m.budget.prepare(rec); err != nil { // issue 5: limits and SSD tier before the first process
		return fail(err)
	}
	floor, err := m.bind(rec, p.measuredFiles()...)
	if err != nil {
		return fail(err)
	}
	cmd, err := m.launch(p, rec, floor, key)
	if err != nil {
		return fail(api.Errorf(api.ErrInvalid, "agent %s: %v", p.name, err))
	}
	pid := cmd.Process.Pid
	start, _ := procStart(pid)
	m.reapers.Add(1)
	go m.watchChild(e, cmd)
	if err := m.transition(ctx, e, state.Active, "", func(r *record) { r.PID, r.PIDStart = pid, start }); err != nil {
		// The program runs but its activation could not be recorded: it
		// must not keep running unrecorded.
		m.mu.Lock()
		e.rec.PID, e.rec.PIDStart = pid, start
		m.mu.Unlock()
		return fail(err)
	}
	return e, nil
}

// measuredFiles are the plan's sealed memfds, for the enforcer.
func (p *plan) measuredFiles() []enforce.MeasuredFile {
	out := []enforce.MeasuredFile{{File: p.exe.File(), Exec: true}}
	if p.script != nil {
		out = append(out, enforce.MeasuredFile{File: p.script.File()})
	}
	return out
}

// attest signs the agent's attestation, stores it and records it.
func (m *Manager) attest(ctx context.Context, p *plan, rec *record) error {
	hostPub := m.cfg.HostKey.Public().(ed25519.PublicKey)
	claims := attest.Claims{
		HostID: m.cfg.HostID, HostKeyID: sign.KeyID(hostPub), AID: rec.AID, Name: rec.Name, Class: rec.Class,
		CgroupID: rec.CgroupID, CgroupPath: rec.CgroupPath, SpawnTime: rec.SpawnTime,
		Authorizer: p.authorizer, Manifest: p.manifestRef,
		Binary:  attest.Digest{Path: p.command[0], SHA256: p.exe.SHA256},
		Command: p.command, User: p.user.Name, UID: p.user.UID, GID: p.user.GID,
		Capabilities: rec.Caps,
		Enforcement:  m.enforcement(),
	}
	if p.script != nil {
		claims.Script = &attest.Digest{Path: p.script.Path, SHA256: p.script.SHA256}
	}
	env, err := attest.Sign(claims, m.cfg.HostKey)
	if err != nil {
		return api.Errorf(api.ErrInternal, "sign attestation: %v", err)
	}
	sum := sha256.Sum256(env)
	if err := m.audit(ctx, audit.AgentAttest(rec.AID, sum, claims.HostKeyID)); err != nil {
		return err
	}
	if err := atomicfile.Write(m.store.attestPath(rec.AID), env, 0o644); err != nil {
		return api.Errorf(api.ErrInternal, "store attestation: %v", err)
	}
	return nil
}

// launch starts the agent's program in its cgroup from the sealed copy.
func (m *Manager) launch(p *plan, rec *record, floor *launch.Floor, key string) (*exec.Cmd, error) {
	logf, err := os.OpenFile(m.store.logPath(rec.AID), os.O_WRONLY|os.O_CREATE|os.O_APPEND|syscall.O_CLOEXEC, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	defer logf.Close()
	g, err := m.cfg.Cgroups.Group(rec.AID)
	if err != nil {
		return nil, err
	}
	fd, err := g.FD()
	if err != nil {
		return nil, err
	}
	defer syscall.Close(fd)
	cfg := launch.Config{Self: m.cfg.Self, CgroupFD: fd, Exec: p.exe.File(), Output: logf, Static: rec.Static}
	if p.script != nil {
		cfg.Script = p.script.File()
	}
	env := p.agentEnv(rec.AID, m.cfg.Socket)
	env = append(env, quota.TierEnv(rec.Memory.SSD, rec.Memory.HBM, m.scratchDir(rec.AID))...) // the SSD tier's mount; the HBM budget for CUDA MPS
	env = inferkey.WithEnv(env, m.cfg.Broker.Env(key))                                         // inference.go: the broker's address and the agent's key
	wait, err := m.sup.start(rec.AID, &cfg)                                                    // supervision.go
	if err != nil {
		return nil, err
	}
	cmd, err := m.cfg.Launch(cfg, launch.Spec{
		Argv: p.argv, Env: env, Dir: p.dir,
		UID: p.user.UID, GID: p.user.GID, Groups: []uint32{p.user.GID},
		KeepExecFD:  p.exe.Script,
		CgroupProcs: m.budget.group(rec).Procs(), // issue 5: v1 controller groups, joined before exec
		Floor:       floor,
	})
	if serr := wait(); err == nil && serr != nil {
		// The agent execs only after the supervisor acknowledged, so
		// this is a failure after a successful handover; never leave an
		// unsupervised agent running.
		cmd.Process.Kill()
		cmd.Wait()
		return nil, serr
	}
	return cmd, err
}
