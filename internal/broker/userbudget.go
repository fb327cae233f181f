package broker

import "fmt"

// A user's token budget spans all their agents (the server profile's
// per-user budget, [broker] user_token_budget): one agent cannot be given
// more than its user has left, and many agents together cannot exceed it.
// It is counted as an agent's own budget is, fail closed: what the
// registry says the user spent, or what it said at first sight plus what
// this broker settled since, whichever is more; reservations in flight
// count against it until settled.

// ustate is one user's budget state.
type ustate struct {
	uid      uint32
	limit    int64
	base     int64 // Tenant.UserTokensUsed at first sight
	usedSeen int64 // Tenant.UserTokensUsed as last reported
	settled  int64 // tokens settled by this broker for the user's agents
	reserved int64 // tokens reserved by the user's requests in flight
}

func (u *ustate) used() int64 { return max(u.usedSeen, u.base+u.settled) }

// user finds or creates ten's user budget and refreshes it; nil when the
// tenant has none.
func (s *scheduler) user(ten Tenant) *ustate {
	if ten.UserTokenLimit <= 0 {
		return nil
	}
	u := s.users[ten.UID]
	if u == nil {
		u = &ustate{uid: ten.UID, base: ten.UserTokensUsed}
		s.users[ten.UID] = u
	}
	u.limit = ten.UserTokenLimit
	u.usedSeen = max(u.usedSeen, ten.UserTokensUsed)
	return u
}

// err is the refusal: ErrOverBudget (429), naming the user's budget.
func (u *ustate) err(t *tstate, w *waiter, inFlight bool) error {
	if inFlight {
		return fmt.Errorf("%w: user token budget: agent %d's request needs %d tokens (prompt ~%d + max_tokens %d); %d of uid %d's %d remain after %d reserved in flight by their agents",
			ErrOverBudget, t.aid, w.need, w.prompt, w.need-w.prompt, max(0, u.limit-u.used()-u.reserved), u.uid, u.limit, u.reserved)
	}
	return fmt.Errorf("%w: user token budget: agent %d's request needs %d tokens (prompt ~%d + max_tokens %d) but only %d of uid %d's %d remain",
		ErrOverBudget, t.aid, w.need, w.prompt, w.need-w.prompt, max(0, u.limit-u.used()), u.uid, u.limit)
}
