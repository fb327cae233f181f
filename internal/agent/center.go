package agent

import (
	"strconv"

	"github.com/coconut-os/coconut/internal/capability"
	"github.com/coconut-os/coconut/internal/policy"
)

// callerDetail is the audit detail naming who made a change: the uid, its
// user name when the system knows it, and the door it came through
// (Caller.Via, e.g. "center") when that is not the Unix API.
func callerDetail(c Caller) map[string]string {
	d := map[string]string{"by_uid": strconv.FormatUint(uint64(c.UID), 10)}
	if id, err := lookupUID(c.UID); err == nil {
		d["by_user"] = id.Name
	}
	if c.AID != 0 {
		d["by_aid"] = strconv.FormatUint(c.AID, 10)
	}
	if c.Via != "" {
		d["via"] = c.Via
	}
	return d
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

// CeilingCovers reports whether cap lies within agent aid's ceiling, the
// check Grant makes, so a page can offer only grants that can succeed.
// Grant still decides.
func (m *Manager) CeilingCovers(caller Caller, aid uint64, cp string) (bool, error) {
	ceil, err := m.Ceiling(caller, aid)
	if err != nil {
		return false, err
	}
	want, err := capability.Parse(cp)
	if err != nil {
		return false, err
	}
	m.mu.Lock()
	uid := m.agents[aid].rec.UID
	m.mu.Unlock()
	if id, err := lookupUID(uid); err == nil {
		want = want.Expand(id.Home)
	}
	parsed, err := capability.ParseAll(ceil)
	if err != nil {
		return false, err
	}
	return policy.Within(parsed, want), nil
}
