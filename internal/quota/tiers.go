package quota

import "fmt"

// Tier is one of the memory tiers of agent_memory_tier.
type Tier string

const (
	HBM Tier = "hbm" // GPU memory: a ledger the inference broker draws from
	RAM Tier = "ram" // the agent's memory limits
	SSD Tier = "ssd" // a size-enforced scratch filesystem
)

// ParseTier accepts exactly hbm, ram or ssd.
func ParseTier(s string) (Tier, error) {
	switch t := Tier(s); t {
	case HBM, RAM, SSD:
		return t, nil
	}
	return "", fmt.Errorf("%w: tier %q: must be hbm, ram or ssd", ErrInvalid, s)
}

// Reserve is a ledger step: n > 0 allocates, n < 0 frees. It returns the
// new amount used, refusing (and changing nothing) past the limit, with no
// budget at all, or when freeing more than is held.
func Reserve(tier Tier, used, limit, n int64) (int64, error) {
	switch {
	case limit <= 0:
		return used, fmt.Errorf("%w: the agent has no %s budget", ErrNoTier, tier)
	case n < 0 && -n > used:
		return used, fmt.Errorf("%w: free %d bytes of %s: only %d are allocated", ErrInvalid, -n, tier, used)
	case n > 0 && n > limit-used:
		return used, fmt.Errorf("%w: %s allocation of %d bytes refused: %d of %d bytes used, %d left",
			ErrOverBudget, tier, n, used, limit, limit-used)
	}
	return used + n, nil
}
