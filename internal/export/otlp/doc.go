// Package otlp exports the audit chain as OpenTelemetry logs over OTLP
// (gRPC or HTTP) to a collector, so the SIEM a site already runs sees every
// row, and can check what it received against the chain.
//
// One audit row is one log record. Its body is the row's canonical record
// bytes (audit.RecordBytes) and its attributes carry coconut.audit.seq,
// coconut.audit.hash and coconut.audit.prev_hash, so a receiver recomputes
// hash = BLAKE3(prev_hash || body) for each record, and the linkage from
// one to the next, without trusting this host. The OpenTelemetry GenAI
// semantic conventions are used where a row has their meaning
// (gen_ai.agent.id, gen_ai.operation.name, gen_ai.tool.name,
// gen_ai.request.model, gen_ai.usage.*); the resource names the host
// (host.id, coconut.host_key_id) because an AID is host-scoped.
//
// Delivery is at least once. The exporter follows the chain (Chain.Follow)
// from the last seq the collector acknowledged, sends batches in seq order
// and, only after an export call succeeded, advances the acknowledged seq,
// which it keeps in a small file in the state directory, saved after every
// acknowledged batch and before the next is sent: a crash re-sends at most
// the one batch in flight, and never skips a row. A collector that is down or refuses a batch (a partial
// success counts as a refusal) gets the same batch again, with backoff; the
// lag grows, nothing is dropped. Export never slows the chain: the follower
// is dropped by the chain when it falls behind and re-reads the rows from
// the segments, so an append never waits for it.
package otlp
