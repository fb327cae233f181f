package quota

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Usage is what an agent's groups report now.
type Usage struct {
	CPUUsec       uint64 // unified cpu.stat usage_usec (present without the cpu controller)
	MemoryCurrent int64  // -1 when no memory controller is attached
	MemoryPeak    int64  // -1 likewise
	Pids          int
	OOMKills      uint64 // processes the kernel OOM-killed inside the group
}

// Usage reads the agent's counters. A counter file that cannot be read or
// parsed is an error: a missing number must not look like zero.
func (g *Group) Usage() (Usage, error) {
	u := Usage{MemoryCurrent: -1, MemoryPeak: -1}
	cpu, err := readKey(filepath.Join(g.unified, "cpu.stat"), "usage_usec")
	if err != nil {
		return u, err
	}
	u.CPUUsec = cpu
	var mem, pids string
	switch g.c.mode {
	case ModeV2:
		mem, pids = g.unified, g.unified
		cur, err := readUint(filepath.Join(mem, "memory.current"))
		if err != nil {
			return u, err
		}
		u.MemoryCurrent = int64(cur)
		if peak, err := readUint(filepath.Join(mem, "memory.peak")); err == nil {
			u.MemoryPeak = int64(peak) // memory.peak needs Linux 5.19
		}
		if u.OOMKills, err = readKey(filepath.Join(mem, "memory.events"), "oom_kill"); err != nil {
			return u, err
		}
	case ModeV1:
		mem, pids = g.v1Path("memory"), g.v1Path("pids")
		cur, err := readUint(filepath.Join(mem, "memory.usage_in_bytes"))
		if err != nil {
			return u, err
		}
		peak, err := readUint(filepath.Join(mem, "memory.max_usage_in_bytes"))
		if err != nil {
			return u, err
		}
		u.MemoryCurrent, u.MemoryPeak = int64(cur), int64(peak)
		if u.OOMKills, err = readKey(filepath.Join(mem, "memory.oom_control"), "oom_kill"); err != nil {
			return u, err
		}
	default:
		return u, nil
	}
	n, err := readUint(filepath.Join(pids, "pids.current"))
	if err != nil {
		return u, err
	}
	u.Pids = int(n)
	return u, nil
}

// OOMKills returns how many processes the kernel OOM-killed in the group;
// 0 in ModeNone.
func (g *Group) OOMKills() (uint64, error) {
	switch g.c.mode {
	case ModeV2:
		return readKey(filepath.Join(g.unified, "memory.events"), "oom_kill")
	case ModeV1:
		return readKey(filepath.Join(g.v1Path("memory"), "memory.oom_control"), "oom_kill")
	}
	return 0, nil
}

func readUint(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	v, err := parseCounter(string(b))
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}

// parseCounter parses one cgroup counter ("12345\n"); "max" is not a
// counter and is refused.
func parseCounter(s string) (uint64, error) {
	v, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: counter %q", ErrInvalid, s)
	}
	return v, nil
}

// readKey reads "KEY VALUE" lines (cpu.stat, memory.events,
// memory.oom_control) and returns KEY's value.
func readKey(path, key string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	v, err := parseKeyed(b, key)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}

// parseKeyed finds key in flat-keyed cgroup text. A missing key or a
// value that is not a counter is an error.
func parseKeyed(b []byte, key string) (uint64, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if ok && k == key {
			return parseCounter(v)
		}
	}
	return 0, fmt.Errorf("%w: no %q line", ErrInvalid, key)
}
