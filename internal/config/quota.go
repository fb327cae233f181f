package config

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/coconut-os/coconut/internal/quota"
)

// Quota is the [quota] table.
type Quota struct {
	Defaults QuotaDefaults `toml:"defaults"`
}

// QuotaDefaults is [quota.defaults]: the budget of every agent for what its
// manifest's quota (or `coconut agent run`'s flags) leaves unset, so that
// no agent runs without a pids and a memory limit unless one asks for
// `max`. Empty fields take the defaults below.
type QuotaDefaults struct {
	// Pids is the tasks limit: an integer, or "max" for none (1024).
	Pids Setting `toml:"pids"`
	// Memory is the memory limit: a share of the host's RAM ("25%"), a
	// size (bytes, "512M", "4G"), or "max" for none ("25%").
	Memory Setting `toml:"memory"`
	// CPUWeight is the cgroup CPU weight, 1..10000 (100).
	CPUWeight int `toml:"cpu_weight"`
}

// The defaults of [quota.defaults]. 1024 tasks is ample for an agent's
// tools (a build runs a few dozen) and stops a fork bomb long before the
// host's pid space (pid_max 4194304) or its memory are at risk. A quarter
// of RAM per agent leaves three quarters to the host and the other agents
// whatever one agent does, and is still gigabytes on a workstation (6 GiB
// of 24 here). 100 is the kernel's own weight: agents share CPU equally.
const (
	DefaultPids        = 1024
	DefaultMemoryShare = "25%"
	DefaultCPUWeight   = 100
)

// Setting is a value that is a number, a size or a share, or "max": it is
// kept as written (TOML integer or string) and read by Resolve.
type Setting string

// UnmarshalTOML takes an integer or a string.
func (s *Setting) UnmarshalTOML(v any) error {
	switch v := v.(type) {
	case int64:
		*s = Setting(strconv.FormatInt(v, 10))
	case string:
		*s = Setting(strings.TrimSpace(v))
	default:
		return fmt.Errorf("want an integer or a string, got %T", v)
	}
	return nil
}

// Defaults are [quota.defaults] resolved on one host. A zero Pids or
// MemoryMax is no limit.
type Defaults struct {
	Pids      int
	MemoryMax int64 // bytes
	CPUWeight int
	Memory    string // the memory setting as written (or the default), for doctor
}

// Resolve turns the settings into limits for a host with ram bytes of
// memory, and says precisely which setting is wrong.
func (q QuotaDefaults) Resolve(ram int64) (Defaults, error) {
	d := Defaults{Pids: DefaultPids, CPUWeight: DefaultCPUWeight, Memory: string(q.Memory)}
	switch p := string(q.Pids); p {
	case "":
	case "max":
		d.Pids = 0
	default:
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > quota.MaxPids {
			return Defaults{}, fmt.Errorf("pids %q: want 1..%d or \"max\"", p, quota.MaxPids)
		}
		d.Pids = n
	}
	if d.Memory == "" {
		d.Memory = DefaultMemoryShare
	}
	switch {
	case d.Memory == "max":
	case strings.HasSuffix(d.Memory, "%"):
		pct, err := strconv.Atoi(strings.TrimSuffix(d.Memory, "%"))
		if err != nil || pct < 1 || pct > 100 {
			return Defaults{}, fmt.Errorf("memory %q: a share is 1%%..100%% of RAM", d.Memory)
		}
		if ram <= 0 {
			return Defaults{}, fmt.Errorf("memory %q: the host's RAM is unknown: give a size instead", d.Memory)
		}
		d.MemoryMax = ram/100*int64(pct) + ram%100*int64(pct)/100 // ram × pct / 100 without overflow
	default:
		n, err := quota.ParseSize(d.Memory)
		if err != nil || n < 1 {
			return Defaults{}, fmt.Errorf("memory %q: want a share of RAM (25%%), a size (512M, 4G) or \"max\"", d.Memory)
		}
		d.MemoryMax = n
	}
	if d.MemoryMax != 0 && d.MemoryMax < quota.MinMemory {
		return Defaults{}, fmt.Errorf("memory %q: %d bytes is below the %d bytes an agent needs to start", d.Memory, d.MemoryMax, int64(quota.MinMemory))
	}
	if q.CPUWeight != 0 {
		if q.CPUWeight < 1 || q.CPUWeight > quota.MaxWeight {
			return Defaults{}, fmt.Errorf("cpu_weight %d: must be 1..%d", q.CPUWeight, quota.MaxWeight)
		}
		d.CPUWeight = q.CPUWeight
	}
	return d, nil
}
