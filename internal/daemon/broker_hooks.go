package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/coconut-os/coconut/api"
	"github.com/coconut-os/coconut/internal/audit"
	"github.com/coconut-os/coconut/internal/broker"
	"github.com/coconut-os/coconut/internal/peer"
)

// refusal is an identification failure: the status class (401: no agent
// could be identified; 403: an agent or a key was identified and does
// not match) and what the audit row says.
type refusal struct {
	forbidden bool
	aid       uint64 // the calling agent, when the kernel named one
	keyAID    uint64 // the agent a presented key belongs to
	via       string
	reason    string
}

func (f *refusal) Error() string { return f.reason }

func (f *refusal) Unwrap() error {
	if f.forbidden {
		return broker.ErrForbidden
	}
	return broker.ErrUnauthorized
}

// identify is Hooks.Identify: who is calling, from the kernel. Every
// refusal is an inference.call deny row (written here: the broker never
// saw a tenant), so a host process probing for keys is on record.
func (s *brokerSvc) identify(r *http.Request) (broker.Tenant, error) {
	aid, ref := s.whoCalls(r)
	if ref == nil {
		t, err := s.tenant(aid)
		if err == nil {
			return t, nil
		}
		ref = &refusal{forbidden: true, aid: aid, via: via(r), reason: err.Error()}
	}
	detail := map[string]string{"status": "401", "result": "unidentified", "via": ref.via, "reason": ref.reason, "endpoint": r.URL.Path}
	errno := 0
	if ref.forbidden {
		detail["status"], detail["result"], errno = "403", "forbidden", int(api.ECapability)
	}
	if ref.keyAID != 0 {
		detail["key_aid"] = strconv.FormatUint(ref.keyAID, 10)
	}
	if cred, ok := peer.FromContext(r.Context()); ok {
		detail["uid"] = strconv.FormatUint(uint64(cred.UID), 10)
		detail["pid"] = strconv.Itoa(cred.PID)
	}
	if ref.aid == 0 {
		// Any local process may knock: its rows are rate-limited so that
		// knocking cannot grow the chain without bound; the next row
		// written says how many were left out.
		n, ok := s.hostRows.take(time.Now())
		if !ok {
			return broker.Tenant{}, ref
		}
		if n > 0 {
			detail["suppressed"] = strconv.FormatUint(n, 10)
		}
	}
	// Not the request's context: a caller that hangs up at once must not
	// take its refusal row with it.
	if _, err := s.chain.Append(context.WithoutCancel(r.Context()), audit.InferenceCall(ref.aid, r.URL.Path, false, errno, detail)); err != nil {
		s.log.Error("audit chain refused an inference refusal row", "err", err)
	}
	return broker.Tenant{}, ref
}

// rowBudget is a token bucket for refusal rows of callers that are not
// agents: burst rows at once, then rate per second.
type rowBudget struct {
	mu         sync.Mutex
	tokens     float64
	last       time.Time
	suppressed uint64
}

const (
	hostRowBurst = 20
	hostRowRate  = 5.0 // rows per second
)

// take reports whether a row may be written now, and how many were left
// out since the last one written.
func (b *rowBudget) take(now time.Time) (suppressed uint64, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.last.IsZero() {
		b.tokens = hostRowBurst
	} else {
		b.tokens = min(hostRowBurst, b.tokens+now.Sub(b.last).Seconds()*hostRowRate)
	}
	b.last = now
	if b.tokens < 1 {
		b.suppressed++
		return 0, false
	}
	b.tokens--
	n := b.suppressed
	b.suppressed = 0
	return n, true
}

// via names the listener a request came on.
func via(r *http.Request) string {
	if _, ok := peer.FromContext(r.Context()); ok {
		return "unix"
	}
	return "tcp"
}

// whoCalls names the calling agent. On the Unix socket the kernel's
// SO_PEERCRED is the identity (the Authorization header is not needed, but
// a coconut key of another agent is refused: someone is using a stolen
// key). On TCP the key names the agent and the kernel must agree: the
// client's socket was created in that agent's cgroup.
func (s *brokerSvc) whoCalls(r *http.Request) (uint64, *refusal) {
	m := s.agents().Tenants()
	hdr := r.Header.Get("Authorization")
	if _, ok := peer.FromContext(r.Context()); ok {
		id, err := peer.Unix(r.Context(), s.tree)
		switch {
		case err != nil:
			return 0, &refusal{via: "unix", reason: err.Error()}
		case id.AID == 0:
			return 0, &refusal{via: "unix", reason: fmt.Sprintf("uid %d pid %d is not an agent: only agents call the inference broker", id.UID, id.PID)}
		}
		if key, err := peer.ParseBearer(hdr); err == nil {
			if k, ok := m.AIDOfKey(peer.HashKey(key)); ok && k != id.AID {
				return 0, &refusal{forbidden: true, via: "unix", aid: id.AID, keyAID: k,
					reason: fmt.Sprintf("agent %d presented the key of agent %d", id.AID, k)}
			}
		}
		return id.AID, nil
	}
	var sockAID uint64
	cg, cgErr := peer.TCPCgroup(r.Context())
	if cgErr == nil {
		sockAID, _ = m.AIDOfCgroup(cg)
	}
	key, err := peer.ParseBearer(hdr)
	if err != nil {
		return 0, &refusal{via: "tcp", aid: sockAID, reason: err.Error()}
	}
	keyAID, ok := m.AIDOfKey(peer.HashKey(key))
	switch {
	case !ok:
		return 0, &refusal{via: "tcp", aid: sockAID, reason: "the key belongs to no running agent"}
	case cgErr != nil:
		return 0, &refusal{forbidden: true, via: "tcp", keyAID: keyAID, reason: fmt.Sprintf("the key of agent %d, and the calling socket cannot be checked: %v", keyAID, cgErr)}
	case sockAID == 0:
		return 0, &refusal{forbidden: true, via: "tcp", keyAID: keyAID, reason: fmt.Sprintf("the key of agent %d, presented by a process that is not an agent", keyAID)}
	case sockAID != keyAID:
		return 0, &refusal{forbidden: true, via: "tcp", aid: sockAID, keyAID: keyAID, reason: fmt.Sprintf("agent %d presented the key of agent %d", sockAID, keyAID)}
	}
	return keyAID, nil
}

// tenant reads the agent's record into the broker's terms, on every
// request: grants, revokes and quota changes take effect on the next call.
func (s *brokerSvc) tenant(aid uint64) (broker.Tenant, error) {
	inf, err := s.agents().Tenants().Inference(aid)
	if err != nil {
		return broker.Tenant{}, err
	}
	return broker.Tenant{AID: aid, Weight: inf.Weight, Models: inf.Models, TokenLimit: inf.TokenLimit,
		TokensUsed: inf.TokensUsed, KVBytes: inf.KVBytes, UID: inf.UID, UserTokenLimit: s.userTokens, UserTokensUsed: inf.UserTokensUsed}, nil
}

// recheck is Hooks.Recheck: after the queue, the agent must still be
// running (not quarantined, not ended) and still hold an inference
// capability for the model, read from its record as tenant reads it.
func (s *brokerSvc) recheck(aid uint64, model string) error {
	inf, err := s.agents().Tenants().Inference(aid)
	if err != nil {
		return fmt.Errorf("%w: agent %d may no longer call the broker: %w", broker.ErrForbidden, aid, err)
	}
	if inf.Models == nil || !inf.Models(model) {
		return fmt.Errorf("%w: agent %d no longer holds an inference capability for model %q", broker.ErrForbidden, aid, model)
	}
	return nil
}

// audit is Hooks.Audit: one inference.call row per call the broker
// handled, and before a streamed call one inference.admit row (allow).
// "allow" means the call was admitted (it may still have ended in a
// backend error or a cancel: see detail.result); "deny" means it was
// refused before it reached the backend: the capability (errno
// ECAPABILITY), the budget, a full queue or a closing broker, or the
// client leaving while queued (errno 0).
func (s *brokerSvc) audit(ctx context.Context, c broker.Call) error {
	var unhealthy error
	if s.calls != nil && s.calls.known(c) {
		// broker_agg.go: a repeat of a key with its row is counted, on a
		// chain that can write the row that will count it.
		unhealthy = s.chain.Err()
		switch {
		case unhealthy != nil && c.Result == broker.ResultAdmitted:
			return unhealthy // refused before its first token
		case unhealthy != nil:
			// Its tokens are spent: its own row below, and refused.
		case c.Result == broker.ResultAdmitted:
			return nil // its end is counted
		case s.calls.add(c, time.Now()):
			return nil
		}
	}
	if err := s.auditRow(ctx, c); err != nil {
		return err
	}
	if s.calls != nil {
		s.calls.wrote(c)
	}
	return unhealthy
}

// auditRow writes c's row of its own.
func (s *brokerSvc) auditRow(ctx context.Context, c broker.Call) error {
	admitted, allowed, errno := false, true, 0
	switch c.Result {
	case broker.ResultAdmitted:
		admitted = true
	case broker.ResultDenied:
		allowed, errno = false, int(api.ECapability)
	case broker.ResultBudget, broker.ResultBusy:
		allowed = false
	case broker.ResultCancelled:
		if c.Reserved == 0 { // left the queue, never admitted
			allowed = false
		}
	}
	detail := map[string]string{
		"tokens_in": strconv.FormatInt(c.TokensIn, 10), "tokens_out": strconv.FormatInt(c.TokensOut, 10),
		"reserved": strconv.FormatInt(c.Reserved, 10), "queue_wait_ms": ms(c.QueueWait.Seconds()),
		"duration_ms": ms(c.Duration.Seconds()), "status": strconv.Itoa(c.Status), "result": c.Result,
		"endpoint": c.Endpoint, "stream": strconv.FormatBool(c.Stream),
	}
	if c.Reason != "" {
		detail["reason"] = c.Reason
	}
	row := audit.InferenceCall(c.AID, c.Model, allowed, errno, detail)
	if admitted {
		row = audit.InferenceAdmit(c.AID, c.Model, detail)
	}
	_, err := s.chain.Append(ctx, row)
	return err
}

func ms(sec float64) string { return strconv.FormatFloat(sec*1000, 'f', 3, 64) }

// blocked is Hooks.Blocked: Active ⇄ Inference-blocked, each an audited
// transition.
func (s *brokerSvc) blocked(aid uint64, blocked bool, reason string) {
	if err := s.agents().Tenants().SetBlocked(aid, blocked, reason); err != nil && !errors.Is(err, api.ErrNotFound) {
		s.log.Warn("inference-blocked transition", "aid", aid, "blocked", blocked, "err", err)
	}
}

// spent is Hooks.Spent: the agent's lifetime usage, persisted.
func (s *brokerSvc) spent(aid uint64, tokens int64) { s.agents().Tenants().AddTokens(aid, tokens) }
