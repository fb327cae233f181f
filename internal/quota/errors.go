package quota

import "errors"

var (
	// ErrInvalid means a budget value is malformed or out of range.
	ErrInvalid = errors.New("invalid quota")
	// ErrUnsupported means the host has no controller to enforce a limit
	// that was asked for. The limit is refused, not ignored.
	ErrUnsupported = errors.New("limit cannot be enforced on this host")
	// ErrOverBudget means a memory-tier allocation would pass its budget.
	ErrOverBudget = errors.New("over budget")
	// ErrNoTier means the agent has no budget in the tier asked for.
	ErrNoTier = errors.New("no budget in this tier")
)
