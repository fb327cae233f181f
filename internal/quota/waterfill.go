package quota

import (
	"math"
	"sort"
)

// waterFill is weighted max-min fairness: capacity is shared in
// proportion to weight, except that no one gets more than its demand, and
// what a satisfied agent leaves is shared again among the others. A
// demand of +Inf means "as much as it can get". The result is each
// agent's allocation, in the order given.
func waterFill(capacity float64, demand, weight []float64) []float64 {
	n := len(demand)
	alloc := make([]float64, n)
	idx := make([]int, 0, n)
	for i := range demand {
		if demand[i] > 0 && weight[i] > 0 {
			idx = append(idx, i)
		}
	}
	// Fill the agents that want least per unit of weight first: each one
	// either takes its whole demand or, once the level passes it, the
	// rest is shared by weight among everyone left.
	sort.SliceStable(idx, func(a, b int) bool {
		return demand[idx[a]]/weight[idx[a]] < demand[idx[b]]/weight[idx[b]]
	})
	left := capacity
	wsum := 0.0
	for _, i := range idx {
		wsum += weight[i]
	}
	for k, i := range idx {
		if left <= 0 || wsum <= 0 {
			break
		}
		level := left / wsum // per unit of weight
		if demand[i] <= level*weight[i] {
			alloc[i] = demand[i]
			left -= demand[i]
			wsum -= weight[i]
			continue
		}
		// Everyone from here on wants more than the level: share by weight.
		for _, j := range idx[k:] {
			alloc[j] = level * weight[j]
		}
		return alloc
	}
	for i := range alloc {
		if math.IsInf(alloc[i], 1) {
			alloc[i] = capacity
		}
	}
	return alloc
}
