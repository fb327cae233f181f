package manifest

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Limits from the kernel's cgroup v2 interface and pid_max.
const (
	maxWeight    = 10000
	maxPids      = 1 << 22
	maxTokens    = 1 << 50
	minCPUQuota  = 1000    // µs, cpu.max refuses less
	minCPUPeriod = 1000    // µs
	maxCPUPeriod = 1000000 // µs
)

// Unlimited is a Quota's Pids or MemoryMax written as `max`: no limit,
// asked for explicitly, so the host's defaults (coconut.toml
// [quota.defaults]) do not apply. An absent field (zero) takes them.
const Unlimited = -1

// isMax is the scalar `max` (plain or quoted).
func isMax(v val) bool {
	return v.n.Kind == yaml.ScalarNode && v.n.ShortTag() == "!!str" && v.n.Value == "max"
}

func (d *decoder) quota(v val) Quota {
	var q Quota
	entries, _ := d.mapping(v, []string{"cpuWeight", "cpuMax", "memoryMax", "memoryHigh", "pids", "ioWeight", "tokens"})
	var high val
	for _, e := range entries {
		switch e.key {
		case "cpuWeight":
			n, _ := d.integer(e.v, 1, maxWeight)
			q.CPUWeight = int(n)
		case "ioWeight":
			n, _ := d.integer(e.v, 1, maxWeight)
			q.IOWeight = int(n)
		case "pids":
			if isMax(e.v) {
				q.Pids = Unlimited
				continue
			}
			n, _ := d.integer(e.v, 1, maxPids)
			q.Pids = int(n)
		case "tokens":
			q.Tokens, _ = d.integer(e.v, 1, maxTokens)
		case "cpuMax":
			if s, ok := d.str(e.v); ok {
				if err := checkCPUMax(s); err != nil {
					d.errorf(e.v.line, e.v.field, "%v", err)
				} else {
					q.CPUMax = s
				}
			}
		case "memoryMax":
			if isMax(e.v) {
				q.MemoryMax = Unlimited
				continue
			}
			q.MemoryMax = d.size(e.v)
		case "memoryHigh":
			q.MemoryHigh, high = d.size(e.v), e.v
		}
	}
	if q.MemoryHigh > 0 && q.MemoryMax > 0 && q.MemoryHigh > q.MemoryMax {
		d.errorf(high.line, high.field, "%d bytes is above memoryMax (%d bytes)", q.MemoryHigh, q.MemoryMax)
	}
	return q
}

// checkCPUMax accepts exactly what cgroup cpu.max takes: "QUOTA PERIOD" or
// "max PERIOD", in microseconds, written canonically.
func checkCPUMax(s string) error {
	quota, period, ok := strings.Cut(s, " ")
	if !ok {
		return fmt.Errorf(`must be "QUOTA PERIOD" or "max PERIOD" in microseconds, got %q`, s)
	}
	if quota != "max" {
		if n, err := canonInt(quota); err != nil || n < minCPUQuota {
			return fmt.Errorf("quota must be max or an integer >= %d, got %q", minCPUQuota, quota)
		}
	}
	if n, err := canonInt(period); err != nil || n < minCPUPeriod || n > maxCPUPeriod {
		return fmt.Errorf("period must be an integer from %d to %d, got %q", minCPUPeriod, maxCPUPeriod, period)
	}
	return nil
}

// canonInt parses a non-negative decimal integer written without sign,
// leading zeros or spaces.
func canonInt(s string) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != s {
		return 0, fmt.Errorf("not a plain integer: %q", s)
	}
	return n, nil
}

var sizeUnits = []struct {
	suffix string
	mult   int64
}{{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40}}

// size accepts a positive byte count: an integer, or a string of digits
// with an optional Ki, Mi, Gi or Ti suffix. It returns 0 after an error.
func (d *decoder) size(v val) int64 {
	if v.n.Kind == yaml.ScalarNode && v.n.ShortTag() == "!!int" {
		n, _ := d.integer(v, 1, math.MaxInt64)
		return n
	}
	s, ok := d.str(v)
	if !ok {
		return 0
	}
	n, err := parseSize(s)
	if err != nil {
		d.errorf(v.line, v.field, "%v", err)
		return 0
	}
	return n
}

func parseSize(s string) (int64, error) {
	digits, mult := s, int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(s, u.suffix) {
			digits, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	n, err := canonInt(digits)
	if err != nil {
		return 0, fmt.Errorf("size must be bytes or a number with Ki, Mi, Gi or Ti, got %q", s)
	}
	if n < 1 {
		return 0, fmt.Errorf("size must be positive, got %q", s)
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return n * mult, nil
}

func (d *decoder) memory(v val) MemoryTiers {
	var m MemoryTiers
	entries, _ := d.mapping(v, []string{"hbm", "ram", "ssd"})
	for _, e := range entries {
		switch e.key {
		case "hbm":
			m.HBM = d.size(e.v)
		case "ram":
			m.RAM = d.size(e.v)
		case "ssd":
			m.SSD = d.size(e.v)
		}
	}
	return m
}

var auditLevels = []string{"all", "first", "none"}

func (d *decoder) audit(v val, p AuditPolicy) AuditPolicy {
	entries, _ := d.mapping(v, []string{"reads", "writes", "exec", "connect"})
	for _, e := range entries {
		s, ok := d.str(e.v)
		if !ok {
			continue
		}
		if !contains(auditLevels, s) {
			d.errorf(e.v.line, e.v.field, "must be one of all, first, none, got %q", s)
			continue
		}
		switch e.key {
		case "reads":
			p.Reads = s
		case "writes":
			p.Writes = s
		case "exec":
			p.Exec = s
		case "connect":
			p.Connect = s
		}
	}
	return p
}
