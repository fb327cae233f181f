// Package events is the one event stream of coconutd: the audit rows a
// caller may see, first the backlog after a sequence number, then the rows
// as they are appended, without a gap or a duplicate across that seam.
//
// It is implemented once, in process, and has several doors: the Unix API's
// GET /v1/events (Server-Sent Events, see sse.go), the Center's pages,
// `coconut notify`, `coconut top` and `coconut-tail`. Authorization is not
// decided here: the caller's visibility of a row is the agent registry's
// rule (agent.Manager.SeesRow), the same one the audit query uses, and the
// row filter is audit.Query's.
//
// A slow consumer never blocks the chain's writer. The chain drops a
// follower whose buffer overflows; the stream then reads on from the chain
// by sequence and marks the next event Resumed, so the consumer learns it
// fell behind and still misses nothing.
package events
