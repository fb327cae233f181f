package daemon

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/coconut-os/coconut/internal/config"
)

// quotaDefaults resolves [quota.defaults] (issue 19) against this host's
// RAM, so a share such as the default 25% becomes bytes once, at start.
func quotaDefaults(q config.QuotaDefaults) (config.Defaults, error) {
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		return config.Defaults{}, fmt.Errorf("quota defaults: read the host's RAM: %w", err)
	}
	d, err := q.Resolve(int64(si.Totalram) * int64(si.Unit))
	if err != nil {
		return config.Defaults{}, fmt.Errorf("quota defaults: %w", err)
	}
	return d, nil
}
