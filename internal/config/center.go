package config

import "fmt"

// Center is the [center] table: where the Center web UI listens. The
// address must be loopback (the daemon refuses anything else); empty
// means the Center is off.
type Center struct {
	Addr string `toml:"addr"`
}

// mergeCenter folds the older top-level center_addr into [center] addr:
// either may be set, both only if they agree.
func (c *Config) mergeCenter() error {
	switch {
	case c.CenterAddr == "":
		c.CenterAddr = c.Center.Addr
	case c.Center.Addr == "":
		c.Center.Addr = c.CenterAddr
	case c.Center.Addr != c.CenterAddr:
		return fmt.Errorf("center_addr %q and [center] addr %q disagree: keep one", c.CenterAddr, c.Center.Addr)
	}
	return nil
}
