package agent

import (
	"fmt"

	"github.com/coconut-os/coconut/api"
	"github.com/coconut-os/coconut/internal/quota"
	"golang.org/x/sys/unix"
)

// The audit chain's reserved headroom (issue 19.5). One flooding agent
// must not fill the disk and so stop every agent's mediated calls (no
// row, no operation). Below AuditReserve free bytes on the state
// directory's filesystem, no new agent is spawned: its spawn rows would
// eat the headroom kept for the deny, storm and state rows that stop a
// storm. Denies are answered deny whatever happens. It is read at each
// spawn, so spawning resumes as soon as space returns.

// DefaultAuditReserve is the headroom when the config names none.
const DefaultAuditReserve = 64 << 20

// auditReserve is the configured headroom in bytes.
func (m *Manager) auditReserve() int64 {
	if m.cfg.AuditReserve > 0 {
		return m.cfg.AuditReserve
	}
	return DefaultAuditReserve
}

// freeBytes is what root may still
// write on the state directory's filesystem (Bfree, root's reserved
// blocks included: coconutd is root).
func freeBytes(dir string) (int64, error) {
	var s unix.Statfs_t
	if err := unix.Statfs(dir, &s); err != nil {
		return 0, err
	}
	return int64(s.Bfree) * s.Bsize, nil
}

// checkReserve refuses a spawn when the chain's filesystem is below the
// reserve, or cannot be read (fail closed).
func (m *Manager) checkReserve() error {
	free, err := freeBytes(m.cfg.StateDir)
	if err != nil {
		return api.Errorf(api.ErrUnavailable, "audit chain's filesystem: %v; spawns refused", err)
	}
	if r := m.auditReserve(); free < r {
		return api.Errorf(api.ErrUnavailable, "audit chain's filesystem (%s) has %s free, below the reserve of %s kept for deny and state rows: spawns refused until space returns",
			m.cfg.StateDir, fmtBytes(free), fmtBytes(r))
	}
	return nil
}

// ReserveCheck is doctor's check of the headroom.
func (m *Manager) ReserveCheck() api.Check {
	c := api.Check{Name: "disk-reserve"}
	free, err := freeBytes(m.cfg.StateDir)
	if err != nil {
		c.Detail = fmt.Sprintf("cannot read free space of %s: %v (spawns refused)", m.cfg.StateDir, err)
		return c
	}
	r := m.auditReserve()
	c.OK = free >= r
	c.Detail = fmt.Sprintf("%s free on %s, reserve %s", fmtBytes(free), m.cfg.StateDir, fmtBytes(r))
	if !c.OK {
		c.Detail += ": BELOW THE RESERVE, new spawns refused until space returns"
	}
	return c
}

func fmtBytes(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// ParseAuditReserve reads coconut.toml's audit_reserve ("64M", "1G").
func ParseAuditReserve(s string) (int64, error) {
	n, err := quota.ParseSize(s)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("audit_reserve %q: want a size such as 64M", s)
	}
	return n, nil
}
