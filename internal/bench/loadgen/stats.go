package loadgen

import (
	"math"
	"sort"
	"time"
)

// Percentile is the nearest-rank percentile of v (p in (0,100]): the
// smallest value with at least p% of the values at or below it. v need not
// be sorted; it is not modified. NaN for an empty slice, so a missing figure
// cannot pass for zero latency.
func Percentile(v []float64, p float64) float64 {
	if len(v) == 0 || p <= 0 || p > 100 {
		return math.NaN()
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	k := int(math.Ceil(p/100*float64(len(s)))) - 1
	if k < 0 {
		k = 0
	}
	return s[k]
}

// Jain is Jain's fairness index (Σx)² / (n·Σx²): 1 when all are equal, 1/n
// when one takes everything. NaN when there is nothing to compare.
func Jain(x []float64) float64 {
	var s, s2 float64
	for _, v := range x {
		s += v
		s2 += v * v
	}
	if len(x) == 0 || s2 == 0 {
		return math.NaN()
	}
	return s * s / (float64(len(x)) * s2)
}

// Interval is [Start, End) on the run's clock.
type Interval struct{ Start, End time.Duration }

// Service is what one tenant received: when it was backlogged and when each
// output token reached it.
type Service struct {
	Weight  int             // fair-share weight; 0 is treated as 100, as the broker does
	Backlog []Interval      // when it had work outstanding, any order, may overlap
	Tokens  []time.Duration // arrival time of each served token, any order
}

func (s Service) scale() float64 {
	if s.Weight <= 0 {
		return 1
	}
	return 100 / float64(s.Weight)
}

// Merge sorts intervals and joins the overlapping or touching ones.
func Merge(iv []Interval) []Interval {
	s := append([]Interval(nil), iv...)
	sort.Slice(s, func(i, j int) bool { return s[i].Start < s[j].Start })
	var out []Interval
	for _, x := range s {
		if x.End <= x.Start {
			continue
		}
		if n := len(out); n > 0 && x.Start <= out[n-1].End {
			out[n-1].End = max(out[n-1].End, x.End)
			continue
		}
		out = append(out, x)
	}
	return out
}

func intersect(a, b []Interval) []Interval {
	var out []Interval
	for i, j := 0, 0; i < len(a) && j < len(b); {
		lo, hi := max(a[i].Start, b[j].Start), min(a[i].End, b[j].End)
		if lo < hi {
			out = append(out, Interval{lo, hi})
		}
		if a[i].End < b[j].End {
			i++
		} else {
			j++
		}
	}
	return out
}

// MaxServiceDiff is the fairness measure of Sheng et al. (OSDI 2024): over
// every interval [t1, t2] during which two tenants are both backlogged, the
// absolute difference of the weighted service they received in it
// (tokens × 100/weight), maximised over pairs and intervals. Service in
// (t1, t2] counts: a token arriving at the instant a backlog starts belongs
// to the time before it. 0 when no two tenants are ever backlogged together.
func MaxServiceDiff(ts []Service) float64 {
	type tenant struct {
		backlog []Interval
		tokens  []time.Duration
		scale   float64
	}
	t := make([]tenant, len(ts))
	for i, s := range ts {
		tok := append([]time.Duration(nil), s.Tokens...)
		sort.Slice(tok, func(a, b int) bool { return tok[a] < tok[b] })
		t[i] = tenant{Merge(s.Backlog), tok, s.scale()}
	}
	best := 0.0
	for i := range t {
		for j := i + 1; j < len(t); j++ {
			for _, iv := range intersect(t[i].backlog, t[j].backlog) {
				best = max(best, diffIn(iv, t[i].tokens, t[j].tokens, t[i].scale, t[j].scale))
			}
		}
	}
	return best
}

// diffIn walks D(t) = Wa(a,t]·sa − Wb(a,t]·sb across iv; the largest
// |D(t2) − D(t1)| is max D − min D, with D = 0 at the start.
func diffIn(iv Interval, a, b []time.Duration, sa, sb float64) float64 {
	inside := func(tok []time.Duration) []time.Duration {
		lo := sort.Search(len(tok), func(k int) bool { return tok[k] > iv.Start })
		hi := sort.Search(len(tok), func(k int) bool { return tok[k] > iv.End })
		return tok[lo:hi]
	}
	a, b = inside(a), inside(b)
	d, lo, hi := 0.0, 0.0, 0.0
	for i, j := 0, 0; i < len(a) || j < len(b); {
		// Tokens at the same instant are applied together so that a
		// tie does not show as a transient difference.
		var at time.Duration
		switch {
		case j >= len(b) || (i < len(a) && a[i] <= b[j]):
			at = a[i]
		default:
			at = b[j]
		}
		for ; i < len(a) && a[i] == at; i++ {
			d += sa
		}
		for ; j < len(b) && b[j] == at; j++ {
			d -= sb
		}
		lo, hi = min(lo, d), max(hi, d)
	}
	return hi - lo
}
