// Package inferkey is the daemon's side of the inference broker's tenants:
// where agents are told the broker is (Broker, its environment and the
// implicit net.connect rule an inference capability brings), the index of
// each running agent's broker key by its hash (Keys), and the pacing of
// the token counts the broker reports (a busy agent settles many calls a
// second; its record is not rewritten for each).
//
// The key itself is made by internal/peer and lives only in the agent's
// environment; the registry (internal/agent) keeps its hash in the agent's
// record and says here when the agent starts and ends.
package inferkey
