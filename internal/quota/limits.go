package quota

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Limits is an agent's cgroup budget. A zero field means "no limit" (for
// the weights: the kernel default, 100).
type Limits struct {
	CPUWeight  int    // 1..10000
	CPUMax     string // "QUOTA PERIOD" or "max PERIOD" in µs, as cgroup v2 cpu.max
	MemoryMax  int64  // bytes
	MemoryHigh int64  // bytes; v1 has no high: it becomes the soft limit
	Pids       int
	IOWeight   int // 1..10000; only where the io controller exists
}

// Bounds. A memory max below MinMemory would OOM-kill the agent before it
// reaches main; MaxPids is the kernel's pid_max ceiling.
const (
	MinMemory        = 4 << 20
	MaxWeight        = 10000
	MaxPids          = 4 << 20
	minCPUPeriod     = 1000    // µs, the kernel's bounds for cpu.max
	maxCPUPeriod     = 1000000 // µs
	minCPUQuota      = 1000    // µs
	DefaultCPUPeriod = 100000  // µs, used when cpu.max gives only a quota
)

// Validate checks every field and says precisely which one is wrong.
func (l Limits) Validate() error {
	if l.CPUWeight < 0 || l.CPUWeight > MaxWeight {
		return fmt.Errorf("%w: cpu_weight %d: must be 1..%d", ErrInvalid, l.CPUWeight, MaxWeight)
	}
	if l.IOWeight < 0 || l.IOWeight > MaxWeight {
		return fmt.Errorf("%w: io_weight %d: must be 1..%d", ErrInvalid, l.IOWeight, MaxWeight)
	}
	if l.CPUMax != "" {
		if _, _, err := ParseCPUMax(l.CPUMax); err != nil {
			return err
		}
	}
	for _, f := range []struct {
		name string
		v    int64
	}{{"memory_max", l.MemoryMax}, {"memory_high", l.MemoryHigh}} {
		if f.v != 0 && (f.v < MinMemory) {
			return fmt.Errorf("%w: %s %d: must be at least %d bytes (4 MiB)", ErrInvalid, f.name, f.v, int64(MinMemory))
		}
	}
	if l.MemoryMax > 0 && l.MemoryHigh > l.MemoryMax {
		return fmt.Errorf("%w: memory_high %d is above memory_max %d", ErrInvalid, l.MemoryHigh, l.MemoryMax)
	}
	if l.Pids < 0 || l.Pids > MaxPids {
		return fmt.Errorf("%w: pids %d: must be 1..%d", ErrInvalid, l.Pids, MaxPids)
	}
	return nil
}

// Merge applies a change to l: a zero field of ch keeps l's value, -1
// (or "max" for CPUMax) removes the limit, anything else replaces it. The
// result is validated. The wire form of agent_quota cannot tell an absent
// field from zero, hence -1 for "remove".
func (l Limits) Merge(ch Limits) (Limits, error) {
	out := l
	pick := func(name string, cur *int, v int) error {
		switch {
		case v == -1:
			*cur = 0
		case v < -1:
			return fmt.Errorf("%w: %s %d: use -1 to remove the limit", ErrInvalid, name, v)
		case v != 0:
			*cur = v
		}
		return nil
	}
	pick64 := func(name string, cur *int64, v int64) error {
		switch {
		case v == -1:
			*cur = 0
		case v < -1:
			return fmt.Errorf("%w: %s %d: use -1 to remove the limit", ErrInvalid, name, v)
		case v != 0:
			*cur = v
		}
		return nil
	}
	for _, err := range []error{
		pick("cpu_weight", &out.CPUWeight, ch.CPUWeight),
		pick("io_weight", &out.IOWeight, ch.IOWeight),
		pick("pids", &out.Pids, ch.Pids),
		pick64("memory_max", &out.MemoryMax, ch.MemoryMax),
		pick64("memory_high", &out.MemoryHigh, ch.MemoryHigh),
	} {
		if err != nil {
			return l, err
		}
	}
	switch strings.TrimSpace(ch.CPUMax) {
	case "":
	case "max":
		out.CPUMax = ""
	default:
		out.CPUMax = strings.TrimSpace(ch.CPUMax)
	}
	if err := out.Validate(); err != nil {
		return l, err
	}
	return out, nil
}

// ParseCPUMax parses cgroup v2's cpu.max syntax: "QUOTA PERIOD", "QUOTA",
// "max PERIOD" or "max", in microseconds. quota is -1 for max.
func ParseCPUMax(s string) (quota int64, period uint64, err error) {
	f := strings.Fields(s)
	if len(f) == 0 || len(f) > 2 {
		return 0, 0, fmt.Errorf("%w: cpu_max %q: want \"QUOTA PERIOD\" or \"max PERIOD\" in µs", ErrInvalid, s)
	}
	period = DefaultCPUPeriod
	if len(f) == 2 {
		p, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil || p < minCPUPeriod || p > maxCPUPeriod {
			return 0, 0, fmt.Errorf("%w: cpu_max %q: period must be %d..%d µs", ErrInvalid, s, minCPUPeriod, maxCPUPeriod)
		}
		period = p
	}
	if f[0] == "max" {
		return -1, period, nil
	}
	q, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil || q < minCPUQuota || q > math.MaxInt64/1000 {
		return 0, 0, fmt.Errorf("%w: cpu_max %q: quota must be \"max\" or at least %d µs", ErrInvalid, s, minCPUQuota)
	}
	return q, period, nil
}

// ParseSize parses a byte count: a plain number, or one with a binary
// suffix K, M, G or T (KiB, MiB… also accepted), or "max" (-1).
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	if t == "max" {
		return -1, nil
	}
	if t == "" {
		return 0, fmt.Errorf("%w: size %q: empty", ErrInvalid, s)
	}
	mult := int64(1)
	upper := strings.ToUpper(t)
	for _, u := range []struct {
		suffix string
		m      int64
	}{{"KIB", 1 << 10}, {"MIB", 1 << 20}, {"GIB", 1 << 30}, {"TIB", 1 << 40},
		{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40}, {"B", 1}} {
		if strings.HasSuffix(upper, u.suffix) {
			mult = u.m
			t = strings.TrimSpace(t[:len(t)-len(u.suffix)])
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%w: size %q: want a byte count such as 536870912, 512M or 2G", ErrInvalid, s)
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("%w: size %q: too large", ErrInvalid, s)
	}
	return n * mult, nil
}

// shares maps a v2 weight (1..10000, default 100) to v1 cpu.shares
// (2..262144, default 1024), the same mapping systemd and runc use in
// reverse, so a weight means the same share in both modes.
func shares(weight int) uint64 {
	if weight == 0 {
		weight = 100
	}
	s := uint64(weight) * 1024 / 100
	return max(s, 2)
}
