package quota

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
)

// CapPeriod is the CFS period of the governor's caps, in µs. Short, so a
// capped agent is stopped for a few milliseconds at a time rather than
// for most of a 100 ms period, and its neighbours see the CPU often.
const CapPeriod = 10000

func onlineCPUs() int { return runtime.NumCPU() }

// CPUSample reads the counters the governor needs. UsageUsec and WaitUsec
// come from the unified directory (present without the cpu controller);
// Throttled from the cpu controller's cpu.stat (v1 group or unified). A
// missing cpu.pressure (PSI off) leaves WaitUsec 0: the governor then sees
// only throttling, never a wait. Weight and UserMax are the caller's.
func (g *Group) CPUSample() (CPUSample, error) {
	s := CPUSample{AID: g.aid}
	b, err := os.ReadFile(filepath.Join(g.unified, "cpu.stat"))
	if err != nil {
		return s, fmt.Errorf("read cpu.stat: %w", err)
	}
	if s.UsageUsec, err = parseKeyed(b, "usage_usec"); err != nil {
		return s, fmt.Errorf("%s/cpu.stat: %w", g.unified, err)
	}
	if g.c.mode == ModeV2 {
		if s.Throttled, err = parseKeyed(b, "nr_throttled"); err != nil {
			return s, fmt.Errorf("%s/cpu.stat: %w", g.unified, err)
		}
	}
	if g.c.mode == ModeV1 {
		if s.Throttled, err = readKey(filepath.Join(g.v1Path("cpu"), "cpu.stat"), "nr_throttled"); err != nil {
			return s, err
		}
	}
	p, err := os.ReadFile(filepath.Join(g.unified, "cpu.pressure"))
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.EOPNOTSUPP):
	case err != nil:
		return s, fmt.Errorf("read cpu.pressure: %w", err)
	default:
		if s.WaitUsec, err = parsePressureTotal(string(p), "some"); err != nil {
			return s, fmt.Errorf("%s/cpu.pressure: %w", g.unified, err)
		}
	}
	return s, nil
}

// parsePressureTotal returns the total= counter (µs) of the line that
// starts with kind ("some" or "full") in PSI text such as
// "some avg10=0.00 avg60=0.00 avg300=0.00 total=123".
func parsePressureTotal(text, kind string) (uint64, error) {
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != kind {
			continue
		}
		for _, kv := range f[1:] {
			if v, ok := strings.CutPrefix(kv, "total="); ok {
				n, err := strconv.ParseUint(v, 10, 64)
				if err != nil {
					return 0, fmt.Errorf("%w: pressure total %q", ErrInvalid, v)
				}
				return n, nil
			}
		}
		return 0, fmt.Errorf("%w: pressure line %q has no total", ErrInvalid, line)
	}
	return 0, fmt.Errorf("%w: no %q pressure line", ErrInvalid, kind)
}

// SetCPU writes the governor's setting for the agent on top of its budget
// l: the cap is the lower of set.Cap and l's cpu_max, over CapPeriod; no
// cap puts l's own cpu_max back. A demoted agent's weight is l's divided
// by factor. In ModeNone it does nothing.
func (g *Group) SetCPU(l Limits, set CPUSetting, factor int) error {
	quota, period := int64(-1), uint64(DefaultCPUPeriod)
	if l.CPUMax != "" {
		var err error
		if quota, period, err = ParseCPUMax(l.CPUMax); err != nil {
			return err
		}
	}
	if set.Cap > 0 {
		c := int64(math.Round(set.Cap * CapPeriod))
		if quota >= 0 {
			c = min(c, int64(float64(quota)*CapPeriod/float64(period)))
		}
		quota, period = max(c, minCPUQuota), CapPeriod
	}
	weight := weightOr100(l.CPUWeight)
	if set.Demoted && factor > 1 {
		weight = max(weight/factor, 1)
	}
	switch g.c.mode {
	case ModeV2:
		q := "max"
		if quota >= 0 {
			q = strconv.FormatInt(quota, 10)
		}
		if err := writeFile(filepath.Join(g.unified, "cpu.max"), q+" "+strconv.FormatUint(period, 10)); err != nil {
			return err
		}
		return writeFile(filepath.Join(g.unified, "cpu.weight"), strconv.Itoa(weight))
	case ModeV1:
		d := g.v1Path("cpu")
		// Lift the quota before changing the period so that no
		// intermediate pair is refused, then set the new quota.
		if err := writeFile(filepath.Join(d, "cpu.cfs_quota_us"), "-1"); err != nil {
			return err
		}
		if err := writeFile(filepath.Join(d, "cpu.cfs_period_us"), strconv.FormatUint(period, 10)); err != nil {
			return err
		}
		if quota >= 0 {
			if err := writeFile(filepath.Join(d, "cpu.cfs_quota_us"), strconv.FormatInt(quota, 10)); err != nil {
				return err
			}
		}
		return writeFile(filepath.Join(d, "cpu.shares"), strconv.FormatUint(shares(weight), 10))
	}
	return nil
}

func writeFile(path, v string) error {
	if err := os.WriteFile(path, []byte(v), 0); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// IdleUsec is the machine's cumulative idle time (idle + iowait of all
// CPUs) from /proc/stat, in µs, for Governor.Step.
func IdleUsec() (uint64, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, fmt.Errorf("read /proc/stat: %w", err)
	}
	return parseStatIdle(string(b))
}

// parseStatIdle reads the aggregate "cpu " line of /proc/stat, whose
// fields are USER_HZ ticks (100 per second on every Linux architecture
// Go supports).
func parseStatIdle(text string) (uint64, error) {
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "cpu" {
			continue
		}
		if len(f) < 6 {
			return 0, fmt.Errorf("%w: /proc/stat cpu line %q", ErrInvalid, line)
		}
		var ticks uint64
		for _, v := range f[4:6] { // idle, iowait
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil || n > math.MaxUint64/20000 {
				return 0, fmt.Errorf("%w: /proc/stat cpu field %q", ErrInvalid, v)
			}
			ticks += n
		}
		return ticks * 10000, nil
	}
	return 0, fmt.Errorf("%w: /proc/stat has no cpu line", ErrInvalid)
}
