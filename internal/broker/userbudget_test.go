package broker

import (
	"context"
	"strings"
	"sync"
	"testing"
)

// TestUserBudget: four agents of one user racing 64 requests together
// get no more than the user's budget (exactly the ten that fit when
// requests wait), the rest refused 429 naming the user's budget; another
// user's agent is not held back; a user whose agents already spent their
// budget (as the registry counts it) is refused at once.
func TestUserBudget(t *testing.T) {
	for _, policy := range []string{OverBudgetWait, OverBudgetReject} {
		t.Run(policy, func(t *testing.T) {
			h := newHarness(t, Config{Slots: 64, OverBudget: policy, Backend: fixedSim(t, SimConfig{Slots: 64})}, Hooks{})
			limit := 90 + needOf(t, chatBody(9, false, "")) // nine settled calls (1 + 9 tokens) and one reservation
			for aid := uint64(1); aid <= 4; aid++ {
				h.tenant(Tenant{AID: aid, UID: 1000, UserTokenLimit: limit})
			}
			h.tenant(Tenant{AID: 9, UID: 1001, UserTokenLimit: limit})
			var wg sync.WaitGroup
			var mu sync.Mutex
			status := map[int]int{}
			var refusal string
			for i := range 64 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					st, body, err := h.post(context.Background(), uint64(1+i%4), "/v1/chat/completions", chatBody(9, false, ""))
					if err != nil {
						t.Error(err)
					}
					mu.Lock()
					status[st]++
					if st == 429 {
						refusal = string(body)
					}
					mu.Unlock()
				}()
			}
			wg.Wait()
			var granted int64
			for _, c := range h.auditRows() {
				granted += c.TokensIn + c.TokensOut
			}
			if granted > limit {
				t.Fatalf("the user's agents were granted %d tokens over a budget of %d", granted, limit)
			}
			if status[200]+status[429] != 64 {
				t.Fatalf("statuses %v", status)
			}
			if policy == OverBudgetWait && status[200] != 10 {
				t.Fatalf("%d succeeded, want exactly the 10 that fit", status[200])
			}
			if policy == OverBudgetReject && (status[200] < 1 || status[200] > 10) {
				t.Fatalf("%d succeeded, want 1..10", status[200])
			}
			if !strings.Contains(refusal, "user token budget") || !strings.Contains(refusal, "uid 1000") {
				t.Errorf("refusal %q does not name the user's budget", refusal)
			}
			if st, body := h.mustPost(9, "/v1/chat/completions", chatBody(9, false, "")); st != 200 {
				t.Errorf("another user's agent: %d %s", st, body)
			}
			// Spent before this broker saw the user (ended agents, a
			// daemon restart): refused at once.
			h.tenant(Tenant{AID: 10, UID: 1002, UserTokenLimit: limit, UserTokensUsed: limit})
			if st, body := h.mustPost(10, "/v1/chat/completions", chatBody(9, false, "")); st != 429 || !strings.Contains(string(body), "user token budget") {
				t.Errorf("a user with the budget spent: %d %s", st, body)
			}
		})
	}
}
