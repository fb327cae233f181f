package broker

import (
	"context"
	"net/http"
	"time"
)

// Tenant is what the broker knows about one calling agent, resolved per
// request by Hooks.Identify.
type Tenant struct {
	AID uint64
	// Weight is the fair-share weight (the agent's cpu weight quota); 0 is
	// treated as 100.
	Weight int
	// Models reports whether the agent's inference capabilities allow a
	// model. nil allows none (fail closed).
	Models func(model string) bool
	// TokenLimit is the lifetime token budget (in+out); 0 means no limit.
	TokenLimit int64
	// TokensUsed is what the agent had spent before this broker first saw
	// it. The broker counts usage = max(TokensUsed, TokensUsed at first
	// sight + tokens settled since), so a wiring that returns either the
	// persisted total or a fixed figure never lets a budget be spent twice.
	TokensUsed int64
	// KVBytes bounds the agent's in-flight context (prompt + max_tokens)
	// times Config.KVBytesPerToken; 0 means no limit.
	KVBytes int64
	// UID is the agent's user. UserTokenLimit is that user's budget
	// across all their agents (0: none); UserTokensUsed what they have
	// spent, counted as TokensUsed is (userbudget.go).
	UID            uint32
	UserTokenLimit int64
	UserTokensUsed int64
}

// Call is one finished (or refused) inference call, for the audit row.
type Call struct {
	AID                 uint64
	Model, Endpoint     string
	Stream              bool
	TokensIn, TokensOut int64
	Reserved            int64 // tokens reserved at admission
	QueueWait           time.Duration
	Duration            time.Duration
	Status              int    // HTTP status returned to the agent
	Result              string // ResultOK, ResultDenied, ResultBudget, ResultBackendError, ResultCancelled, ResultBusy, ResultAdmitted
	Reason              string
}

// Call results.
const (
	ResultOK           = "ok"
	ResultDenied       = "denied"
	ResultBudget       = "budget"
	ResultBackendError = "backend_error"
	ResultCancelled    = "cancelled"
	ResultBusy         = "busy" // the queue was full or the broker closing
	// ResultAdmitted is not a call's end but the row a streamed call
	// writes before its first token leaves, so no output reaches the
	// agent unrecorded; its final row follows.
	ResultAdmitted = "admitted"
)

// Hooks connect the broker to the daemon. Every hook may be nil.
type Hooks struct {
	// Identify resolves the calling agent. An error refuses the request:
	// 403 when it wraps ErrForbidden, 401 otherwise; its text goes to the
	// client. A nil Identify refuses every request.
	Identify func(r *http.Request) (Tenant, error)
	// Audit writes one chain row per call. For a call that does not
	// stream it runs before any byte of the answer reaches the agent; if
	// it fails the agent gets a 500 instead. A streamed call delivers
	// tokens as they come, so it is first recorded by an admission row
	// (Result ResultAdmitted, before the backend is asked; if that fails
	// the agent gets a 503 and nothing is generated), then by its final
	// row (if that fails the stream ends with an error event, not [DONE]).
	Audit func(ctx context.Context, c Call) error
	// Recheck runs once a request leaves the queue, before it reaches the
	// backend: a revoke or a quarantine while it waited must stop it. An
	// error (wrapping ErrForbidden or not) refuses the call with an
	// audited 403 and releases its reservation. A nil Recheck calls
	// Identify again and checks the agent and the model (fail closed).
	Recheck func(aid uint64, model string) error
	// Blocked reports an agent starting (true) or ceasing (false) to wait
	// for its token or KV budget. Called in order from one goroutine,
	// outside broker locks; it may be slow.
	Blocked func(aid uint64, blocked bool, reason string)
	// Spent reports tokens settled for an agent after each call (same
	// goroutine as Blocked).
	Spent func(aid uint64, tokens int64)
}

// Scheduling policies.
const (
	PolicyVTC  = "vtc"
	PolicyFIFO = "fifo"
)

// Over-budget policies.
const (
	OverBudgetWait   = "wait"
	OverBudgetReject = "reject"
)

// Config sizes the broker. The zero value is usable: every zero field takes
// the default named beside it.
type Config struct {
	Policy           string // PolicyVTC (default) or PolicyFIFO
	Slots            int    // in-flight requests to the backend (default 8)
	ContextTokens    int64  // sum of prompt + max_tokens in flight (default 65536)
	OverBudget       string // OverBudgetWait (default) or OverBudgetReject
	DefaultMaxTokens int64  // when a request names no max_tokens (default 256)
	KVBytesPerToken  int64  // default 131072 (Llama-3-8B class)
	Backend          Backend

	// Headroom is the number of slots (default max(1, Slots/2); negative:
	// off) a tenant that already holds its weighted fair share of slots may
	// not take while another tenant has sent a request within ActiveWindow.
	// It keeps a flooder from filling every slot with long requests, which
	// plain VTC allows (VTC orders the queue, it does not reserve capacity),
	// at the cost of up to Headroom idle slots while light tenants are
	// quiet but recently active. Only the VTC policy applies it. Half the
	// slots is what kept the light tenants' p99 within 1.5x under the
	// flood in `coconut bench broker` (3 of 8 gave 1.4-1.75x, 2 of 8
	// 1.85x); what it costs in throughput under a flood is that bench's
	// headroom_throughput_ratio (about 0.64 at 4 of 8, 0.72 at 3 of 8).
	Headroom int
	// ActiveWindow is how long a tenant counts as active after its last
	// request (default 2s).
	ActiveWindow time.Duration
	// MaxBodyBytes bounds a request body (default 4 MiB).
	MaxBodyBytes int64
	// MaxQueue bounds queued requests over all tenants (default 4096); past
	// it requests get 429 at once.
	MaxQueue int
	// MaxQueuePerAgent bounds one tenant's queued requests (default 256,
	// at most MaxQueue), so one flooder cannot fill the shared queue: past
	// it that tenant gets 429 busy, others are unaffected.
	MaxQueuePerAgent int
	// WriteTimeout bounds each write of a streamed answer (default 30s):
	// a client that stops reading is cut off, its backend request
	// cancelled and the call recorded as cancelled, instead of holding a
	// slot forever.
	WriteTimeout time.Duration
	// MetricsGrace is how long an ended agent's per-agent series stay on
	// /metrics after its last request settled (default 5m; negative: drop
	// at once). AIDs are never reused, so series kept for ever would grow
	// with every agent spawned; dropping them at once would lose the
	// tokens settled since the last scrape (Prometheus scrapes every 15 s
	// to 1 min). The over-all totals are kept.
	MetricsGrace time.Duration
}

// Stats is a snapshot for `coconut top` and the Center.
type Stats struct {
	Policy      string       `json:"policy"`
	Slots       int          `json:"slots"`
	InFlight    int          `json:"in_flight"`
	Queued      int          `json:"queued"`
	ContextUsed int64        `json:"context_used"`
	TokensIn    int64        `json:"tokens_in"`
	TokensOut   int64        `json:"tokens_out"`
	Blocked     []uint64     `json:"blocked"`
	Agents      []AgentStats `json:"agents"`
}

// AgentStats is one tenant's share of Stats.
type AgentStats struct {
	AID       uint64  `json:"aid"`
	TokensIn  int64   `json:"tokens_in"`
	TokensOut int64   `json:"tokens_out"`
	Queued    int     `json:"queued"`
	InFlight  int     `json:"in_flight"`
	Reserved  int64   `json:"reserved"`
	Blocked   bool    `json:"blocked"`
	Reason    string  `json:"reason,omitempty"`
	Counter   float64 `json:"counter"`
}
