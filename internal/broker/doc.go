// Package broker is the inference broker: an OpenAI-compatible endpoint
// (/v1/chat/completions, /v1/completions, /v1/embeddings, /v1/models,
// streaming and not) that knows which agent calls (Hooks.Identify), meters
// tokens, enforces token and KV budgets, schedules fairly, and forwards to a
// backend: the embedded simulated backend (Sim) or any OpenAI-compatible
// server (Upstream).
//
// Scheduling. At most Config.Slots requests are in flight to the backend,
// and the sum of their prompt estimates + max_tokens stays within
// Config.ContextTokens, so queueing happens here where fairness can act.
// The default policy is the virtual token counter of Sheng et al. (OSDI
// 2024, "Fairness in Serving Large Language Models"): each tenant has a
// counter charged with its input tokens at admission and its output tokens
// as they stream, divided by its weight; when a tenant becomes backlogged
// its counter is lifted to the smallest counter among backlogged tenants
// (or the last-served tenant's when none is), so idle time is never banked
// as credit; whenever a slot and enough context pool are free, the
// backlogged tenant with the smallest counter is dispatched. A request too
// large for the free context pool waits at the head rather than being
// overtaken forever. VTC orders the queue but reserves no capacity, so a
// flooder could still fill every slot with long requests; the headroom rule
// (Config.Headroom) keeps the last free slots from the tenant that holds the
// most slots and at least its weighted share while another tenant is active
// (and, just after start, from a lone tenant). FIFO (Config.Policy "fifo")
// is the baseline: arrival order, no headroom.
//
// Budgets. Before admission a request reserves prompt estimate + max_tokens
// against TokenLimit − used − reserved, under the scheduler's one lock, so
// concurrent requests can never overshoot a budget; on completion it
// settles with the backend's usage (or, when a stream broke or reported
// none, the broker's own count: one token per content chunk) and the rest is
// refunded. The KV budget bounds a tenant's in-flight context tokens ×
// KVBytesPerToken. A request that can never fit (more than what remains of
// the lifetime budget, or more than the KV budget alone) gets 429 at once;
// one that does not fit now waits (OverBudget "wait": Hooks.Blocked reports
// the tenant Inference-blocked until none of its requests wait) or gets 429
// (OverBudget "reject"). Upstream requests carry max_tokens pinned to the
// reservation, and streaming ones stream_options.include_usage.
//
// Every call that reached a decision (served, denied, over budget, backend
// error, cancelled) is one Hooks.Audit row, written before the final bytes
// reach the agent; if the row cannot be written the agent gets an error
// instead of the answer. The request path takes the scheduler lock a few
// times per request and once per streamed token, never across I/O, and
// starts no goroutines; Hooks.Blocked and Hooks.Spent run on one goroutine
// of their own.
package broker
