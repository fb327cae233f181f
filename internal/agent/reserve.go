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

// reserve is that guard: it owns the headroom in bytes and the directory
// whose filesystem holds the chain, and reads the free space at each ask.
type reserve struct {
	dir   string // the state directory
	bytes int64  // the headroom; 0: DefaultAuditReserve
}

// size is the configured headroom in bytes.
func (r reserve) size() int64 {
	if r.bytes > 0 {
		return r.bytes
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

// check refuses a spawn when the chain's filesystem is below the
// reserve, or cannot be read (fail closed).
func (r reserve) check() error {
	free, err := freeBytes(r.dir)
	if err != nil {
		return api.Errorf(api.ErrUnavailable, "audit chain's filesystem: %v; spawns refused", err)
	}
	if n := r.size(); free < n {
		return api.Errorf(api.ErrUnavailable, "audit chain's filesystem (%s) has %s free, below the reserve of %s kept for deny and state rows: spawns refused until space returns",
			r.dir, fmtBytes(free), fmtBytes(n))
	}
	return nil
}

// doctor is doctor's check of the headroom.
func (r reserve) doctor() api.Check {
	c := api.Check{Name: "disk-reserve"}
	free, err := freeBytes(r.dir)
	if err != nil {
		c.Detail = fmt.Sprintf("cannot read free space of %s: %v (spawns refused)", r.dir, err)
		return c
	}
	n := r.size()
	c.OK = free >= n
	c.Detail = fmt.Sprintf("%s free on %s, reserve %s", fmtBytes(free), r.dir, fmtBytes(n))
	if !c.OK {
		c.Detail += ": BELOW THE RESERVE, new spawns refused until space returns"
	}
	return c
}

// ReserveCheck is doctor's check of the headroom (reserve.doctor).
func (m *Manager) ReserveCheck() api.Check { return m.reserve.doctor() }

func fmtBytes(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// ParseAuditReserve reads coconut.toml's audit_reserve ("64M", "1G").
func ParseAuditReserve(s string) (int64, error) {
	n, err := quota.ParseSize(s)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("audit_reserve %q: want a size such as 64M", s)
	}
	return n, nil
}
