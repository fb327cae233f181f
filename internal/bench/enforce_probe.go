package bench

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/coconut-os/coconut/api"
)

// errProbeOutput marks output of coconut-enforce-probe that the bench
// cannot use: no result line, or one that contradicts itself.
var errProbeOutput = errors.New("probe output")

// probeResult is one result line of internal/bench/loads/coconut-enforce-probe (its
// `result` type; keep the field names in step).
type probeResult struct {
	Op      string         `json:"op"`
	Iters   int            `json:"iters"`
	NsPerOp float64        `json:"ns_per_op"`
	Errnos  map[string]int `json:"errnos"`
	// loop only: op i started at MonoBase + sum(Start[:i+1]) and took Dur[i].
	MonoBase int64   `json:"mono_base_ns"`
	Start    []int64 `json:"start_ns"`
	Dur      []int64 `json:"dur_ns"`
	Errno    []int   `json:"errno"`
}

// probeOp is one operation of a loop, in CLOCK_MONOTONIC nanoseconds.
type probeOp struct {
	Start, End int64
	Errno      int
}

// maxErrno bounds errno values: Linux's are below 4096 (the kernel's
// MAX_ERRNO), ECAPABILITY (134) included.
const maxErrno = 4095

// parseProbe finds the last result line of op in a probe's output (an
// agent's log may hold other lines) and checks that it is consistent.
func parseProbe(out []byte, op string) (probeResult, error) {
	var last []byte
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 64<<10), 256<<20)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if bytes.HasPrefix(line, []byte(`{"op":`)) {
			last = append(last[:0], line...)
		}
	}
	if err := sc.Err(); err != nil {
		return probeResult{}, fmt.Errorf("%w: %w", errProbeOutput, err)
	}
	if last == nil {
		return probeResult{}, fmt.Errorf("%w: no result line", errProbeOutput)
	}
	var r probeResult
	if err := json.Unmarshal(last, &r); err != nil {
		return probeResult{}, fmt.Errorf("%w: %w", errProbeOutput, err)
	}
	if r.Op != op {
		return probeResult{}, fmt.Errorf("%w: result of %q, want %q", errProbeOutput, r.Op, op)
	}
	if err := r.check(); err != nil {
		return probeResult{}, fmt.Errorf("%w: %s: %w", errProbeOutput, op, err)
	}
	return r, nil
}

func (r probeResult) check() error {
	if r.Iters < 0 {
		return fmt.Errorf("iters %d", r.Iters)
	}
	if math.IsNaN(r.NsPerOp) || math.IsInf(r.NsPerOp, 0) || r.NsPerOp < 0 {
		return fmt.Errorf("ns_per_op %v", r.NsPerOp)
	}
	sum := 0
	for k, n := range r.Errnos {
		e, err := strconv.Atoi(k)
		if err != nil || e < 0 || e > maxErrno || strconv.Itoa(e) != k {
			return fmt.Errorf("errno key %q", k)
		}
		if n < 0 || n > r.Iters {
			return fmt.Errorf("errno %s: count %d", k, n)
		}
		sum += n
	}
	if sum != r.Iters {
		return fmt.Errorf("errno counts add up to %d, not iters %d", sum, r.Iters)
	}
	if r.Start == nil && r.Dur == nil && r.Errno == nil {
		return nil
	}
	if len(r.Start) != r.Iters || len(r.Dur) != r.Iters || len(r.Errno) != r.Iters {
		return fmt.Errorf("%d ops but %d starts, %d durations, %d errnos", r.Iters, len(r.Start), len(r.Dur), len(r.Errno))
	}
	if r.MonoBase < 0 {
		return fmt.Errorf("mono_base_ns %d", r.MonoBase)
	}
	count := map[int]int{}
	t := r.MonoBase
	for i := range r.Start {
		if r.Start[i] < 0 || r.Dur[i] < 0 || r.Errno[i] < 0 || r.Errno[i] > maxErrno {
			return fmt.Errorf("op %d: start +%d, duration %d, errno %d", i, r.Start[i], r.Dur[i], r.Errno[i])
		}
		// The clock must not wrap: sums stay below 2^63.
		if t > math.MaxInt64-r.Start[i] || t+r.Start[i] > math.MaxInt64-r.Dur[i] {
			return fmt.Errorf("op %d: time overflows", i)
		}
		t += r.Start[i]
		count[r.Errno[i]]++
	}
	for k, n := range r.Errnos {
		e, _ := strconv.Atoi(k)
		if count[e] != n {
			return fmt.Errorf("errno %s: %d in the counts, %d in the ops", k, n, count[e])
		}
	}
	return nil
}

// ops returns a loop's operations with absolute times (check has run).
func (r probeResult) ops() []probeOp {
	out := make([]probeOp, len(r.Start))
	t := r.MonoBase
	for i := range r.Start {
		t += r.Start[i]
		out[i] = probeOp{Start: t, End: t + r.Dur[i], Errno: r.Errno[i]}
	}
	return out
}

// hasReady reports whether a loop probe has printed its ready line.
func hasReady(out []byte) bool { return bytes.Contains(out, []byte(`{"ready":true}`)) }

// revokeStats places a loop's operations against a revoke call that
// started at CLOCK_MONOTONIC rs and returned at rr.
type revokeStats struct {
	Ops             int `json:"ops"`
	SucceededBefore int `json:"succeeded_before_call"` // started before the call
	SucceededDuring int `json:"succeeded_during_call"` // started while it ran
	// OpsAfterRevoke counts ops that started after the call returned and
	// succeeded: the promise is that there are none.
	OpsAfterRevoke int            `json:"ops_after_revoke"`
	Denied         int            `json:"denied"`
	OtherErrnos    map[string]int `json:"other_errnos,omitempty"`
	CallUs         float64        `json:"call_us"` // call start → return
	// ReturnToFirstDenyUs is call return → the first denied op's end;
	// negative when that op was already refused before the call returned.
	ReturnToFirstDenyUs float64 `json:"return_to_first_deny_us"`
	Quarantined         string  `json:"quarantined,omitempty"`
}

// errNoDeny: the loop never saw the revocation.
var errNoDeny = errors.New("no op of the loop was denied")

func analyzeRevoke(ops []probeOp, rs, rr int64) (revokeStats, error) {
	st := revokeStats{Ops: len(ops), CallUs: float64(rr-rs) / 1000}
	if rr < rs {
		return st, fmt.Errorf("revoke returned (%d) before it started (%d)", rr, rs)
	}
	ecap := int(api.ECapability)
	first := -1
	for i, op := range ops {
		switch {
		case op.Errno == 0 && op.Start > rr:
			st.OpsAfterRevoke++
		case op.Errno == 0 && op.Start >= rs:
			st.SucceededDuring++
		case op.Errno == 0:
			st.SucceededBefore++
		case op.Errno == ecap:
			st.Denied++
			if first < 0 {
				first = i
			}
		default:
			if st.OtherErrnos == nil {
				st.OtherErrnos = map[string]int{}
			}
			st.OtherErrnos[strconv.Itoa(op.Errno)]++
		}
	}
	if first < 0 {
		return st, fmt.Errorf("%w (%d ops): the loop ended before the revocation reached it; raise --loop-iters", errNoDeny, len(ops))
	}
	st.ReturnToFirstDenyUs = math.Round(float64(ops[first].End-rr)/100) / 10
	st.CallUs = math.Round(st.CallUs*10) / 10
	return st, nil
}
