package loadgen

import (
	"math"
	"strconv"
	"time"
)

// TenantStats is one tenant's share of a run, over the measured window
// [Warmup, Duration).
type TenantStats struct {
	Name     string `json:"name"`
	Requests int    `json:"requests"` // measured requests that completed
	// Failed counts measured requests that got an error or a non-200
	// (cancelled closed-loop requests at the end are not counted).
	Failed int `json:"failed"`
	// Latencies in milliseconds; NaN (null in JSON) with no requests.
	TTFTP50 Figure `json:"ttft_p50_ms"`
	TTFTP99 Figure `json:"ttft_p99_ms"`
	E2EP50  Figure `json:"e2e_p50_ms"`
	E2EP99  Figure `json:"e2e_p99_ms"`
	// Tokens is output tokens that arrived inside the window.
	Tokens       int64   `json:"tokens"`
	TokensPerSec float64 `json:"tokens_per_s"`
}

// Summary is a run reduced to the figures the bench prints.
type Summary struct {
	Tenants      []TenantStats `json:"tenants"`
	TokensPerSec float64       `json:"tokens_per_s"` // all tenants
	RPS          float64       `json:"rps"`          // completed measured requests per second
	// Jain's index over weighted service (tokens × 100/weight).
	Jain Figure `json:"jain"`
	// MaxServiceDiff in weighted tokens, see MaxServiceDiff.
	MaxServiceDiff float64 `json:"max_service_diff_tokens"`
}

// tokenTimes is when a record's output arrived: per chunk for streams,
// all at the end otherwise.
func tokenTimes(r Record) []time.Duration {
	if len(r.TokenTimes) > 0 || r.TokensOut == 0 {
		return r.TokenTimes
	}
	out := make([]time.Duration, r.TokensOut)
	for i := range out {
		out[i] = r.End
	}
	return out
}

// Summarize computes every figure of a run.
func Summarize(res Result) Summary {
	lo, hi := res.Run.Warmup, res.Run.Duration
	window := (hi - lo).Seconds()
	var s Summary
	var weighted []float64
	var service []Service
	for i, tn := range res.Run.Tenants {
		ts := TenantStats{Name: tn.Name}
		var ttft, e2e []float64
		sv := Service{Weight: tn.Weight}
		for _, r := range res.Records[i] {
			// Failed and cancelled requests were outstanding too.
			sv.Backlog = append(sv.Backlog, Interval{r.Start, r.End})
			for _, at := range tokenTimes(r) {
				if at >= lo && at < hi {
					ts.Tokens++
					sv.Tokens = append(sv.Tokens, at)
				}
			}
			if r.Start < lo || r.Start >= hi {
				continue
			}
			switch {
			case r.OK():
				ts.Requests++
				ttft = append(ttft, ms(r.FirstToken-r.Start))
				e2e = append(e2e, ms(r.End-r.Start))
			case r.Err != "cancelled":
				ts.Failed++
			}
		}
		ts.TTFTP50, ts.TTFTP99 = Figure(Percentile(ttft, 50)), Figure(Percentile(ttft, 99))
		ts.E2EP50, ts.E2EP99 = Figure(Percentile(e2e, 50)), Figure(Percentile(e2e, 99))
		ts.TokensPerSec = float64(ts.Tokens) / window
		s.TokensPerSec += ts.TokensPerSec
		s.RPS += float64(ts.Requests) / window
		s.Tenants = append(s.Tenants, ts)
		weighted = append(weighted, float64(ts.Tokens)*sv.scale())
		// Backlog is only meaningful inside the window, like the tokens.
		sv.Backlog = clip(sv.Backlog, Interval{lo, hi})
		service = append(service, sv)
	}
	s.Jain = Figure(Jain(weighted))
	s.MaxServiceDiff = MaxServiceDiff(service)
	return s
}

func clip(iv []Interval, w Interval) []Interval {
	var out []Interval
	for _, x := range iv {
		x.Start, x.End = max(x.Start, w.Start), min(x.End, w.End)
		if x.Start < x.End {
			out = append(out, x)
		}
	}
	return out
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Pooled is the latency percentile over several tenants' measured,
// completed requests together: the well-behaved tenants as one population.
func Pooled(res Result, tenants []int, p float64, e2e bool) float64 {
	var v []float64
	for _, i := range tenants {
		for _, r := range res.Records[i] {
			if !r.OK() || r.Start < res.Run.Warmup || r.Start >= res.Run.Duration {
				continue
			}
			d := r.End - r.Start
			if !e2e {
				d = r.FirstToken - r.Start
			}
			v = append(v, ms(d))
		}
	}
	return Percentile(v, p)
}

// Figure is a measured number that encodes as null in JSON when it could
// not be measured (NaN, ±Inf), since encoding/json refuses those.
type Figure float64

// MarshalJSON implements json.Marshaler.
func (f Figure) MarshalJSON() ([]byte, error) {
	v := float64(f)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, math.Round(v*1000)/1000, 'f', -1, 64), nil
}
