package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"sort"
	"time"

	"github.com/coconut-os/coconut/api"
	"github.com/coconut-os/coconut/internal/audit"
)

// Prune forgets the ended agents caller may see that ended before before:
// their registry record, attestation and log under STATE/agents go, and
// they leave `agent ls --all`. Each gets an agent.prune row first; no row
// about them is removed, with the attestation's SHA-256 (agent.attest) and
// every state change. Agents may not prune; a user prunes only the agents
// they authorized, root any.
func (m *Manager) Prune(caller Caller, before time.Time) (api.PruneResult, error) {
	res := api.PruneResult{Pruned: []uint64{}, EndedBefore: before}
	if caller.AID != 0 {
		return res, api.Errorf(api.ErrDenied, "agent %d may not prune agents", caller.AID)
	}
	m.mu.Lock()
	var cands []*entry
	for _, e := range m.agents {
		if visible(caller, e.rec) && e.rec.State.Terminal() {
			cands = append(cands, e)
		}
	}
	m.mu.Unlock()
	sort.Slice(cands, func(i, j int) bool { return cands[i].rec.AID < cands[j].rec.AID })
	var errs []error
	for _, e := range cands {
		n, pruned, err := m.pruneOne(e, caller.UID, before)
		if err != nil {
			errs = append(errs, err)
		}
		if pruned {
			res.Pruned = append(res.Pruned, e.rec.AID)
			res.Bytes += n
		} else if err == nil {
			res.Kept++
		}
	}
	if err := errors.Join(errs...); err != nil {
		return res, api.Errorf(api.ErrInternal, "prune: %v", err)
	}
	return res, nil
}

// pruneOne removes one ended agent if it ended before before. It holds
// the agent's transition lock, so no state change is half done, and drops
// it from the registry before removing its files: a crash in between
// leaves files no record names, which the next prune does not see but
// which harm nothing (the record goes last, so a restart still lists it).
func (m *Manager) pruneOne(e *entry, by uint32, before time.Time) (int64, bool, error) {
	e.trans.Lock()
	defer e.trans.Unlock()
	m.mu.Lock()
	r := e.rec
	ended := r.EndTime
	if ended.IsZero() {
		ended = r.SpawnTime
	}
	if !r.State.Terminal() || !ended.Before(before) || m.agents[r.AID] != e {
		m.mu.Unlock()
		return 0, false, nil
	}
	m.mu.Unlock()
	// The row first: a prune the chain cannot record does not happen.
	if err := m.audit(context.Background(), audit.AgentPrune(r.AID, by, before, ended)); err != nil {
		return 0, false, fmt.Errorf("agent %d: %w", r.AID, err)
	}
	m.mu.Lock() // e.trans is held: nothing else ends or forgets e meanwhile
	delete(m.agents, r.AID)
	if m.byCgroup[r.CgroupID] == r.AID {
		delete(m.byCgroup, r.CgroupID)
	}
	m.mu.Unlock()
	var n int64
	var errs []error
	for _, p := range []string{m.store.logPath(r.AID), m.store.attestPath(r.AID), m.store.recordPath(r.AID)} {
		st, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err == nil {
			n += st.Size()
			err = os.Remove(p)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("agent %d: %w", r.AID, err))
		}
	}
	return n, true, errors.Join(errs...)
}

// retain is the retention setting (agent_retention, keep; 0: none): at
// once and then every hour until stop, the agents that ended longer ago
// than keep are pruned as root would (prune: Manager.Prune).
func retain(stop <-chan struct{}, keep time.Duration, prune func(Caller, time.Time) (api.PruneResult, error), log *slog.Logger) {
	if keep <= 0 {
		return
	}
	tick := func() {
		res, err := prune(Caller{UID: 0}, time.Now().Add(-keep))
		if err != nil {
			log.Warn("agent retention: prune failed", "err", err)
		}
		if len(res.Pruned) > 0 {
			log.Info("agent retention: ended agents pruned", "agents", len(res.Pruned), "bytes", res.Bytes, "agent_retention", keep)
		}
	}
	tick()
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			tick()
		}
	}
}

// ParseRetention reads agent_retention: days (30d) or a Go duration
// (36h), at least an hour.
func ParseRetention(s string) (time.Duration, error) {
	d, err := parseDays(s)
	if err != nil || d < time.Hour {
		return 0, fmt.Errorf("agent_retention %q: want an age of at least 1h, such as 30d or 36h", s)
	}
	return d, nil
}

// parseDays reads "30d" or a Go duration.
func parseDays(s string) (time.Duration, error) {
	var n uint
	if _, err := fmt.Sscanf(s, "%dd", &n); err == nil && fmt.Sprintf("%dd", n) == s && n > 0 && n <= 36500 {
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}
