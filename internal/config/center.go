package config

import "fmt"

// Center is the [center] table: where the Center web UI listens. The
// address must be loopback (the daemon refuses anything else); empty
// means the Center is off.
type Center struct {
	Addr string `toml:"addr"`
	// Enabled overrides the profile's default: a workstation (the
	// [setup] profile coconut init wrote) runs the Center on a loopback
	// port of the kernel's choosing unless false; a server runs none
	// unless true or addr is set.
	Enabled *bool `toml:"enabled"`
}

// CenterAuto is the address a Center enabled without one listens on:
// loopback, a free port (`coconut center` asks the daemon for the link).
const CenterAuto = "127.0.0.1:0"

// CenterListen is where coconutd serves the Center, "" for none: addr
// when set (enabled = false then refuses to load), else by profile:
// on for a workstation, off for a server and for a config init never
// wrote, each unless enabled says otherwise.
func (c *Config) CenterListen() string {
	if c.Center.Addr != "" {
		return c.Center.Addr
	}
	on := c.Setup.Profile == "workstation"
	if c.Center.Enabled != nil {
		on = *c.Center.Enabled
	}
	if on {
		return CenterAuto
	}
	return ""
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
	if c.Center.Addr != "" && c.Center.Enabled != nil && !*c.Center.Enabled {
		return fmt.Errorf("[center] enabled = false with addr %q: keep one", c.Center.Addr)
	}
	return nil
}
