// Package client is libcoconut: the Go client for coconutd's local API. It
// has one method per call of design.md, named after it (AgentSpawn,
// AgentAttest, AgentQuota, AgentCapGrant, AgentCapRevoke, AgentCapPresent,
// AgentAuditQuery, AgentMemoryTier), plus the housekeeping the CLI needs.
//
// The zero Client talks to the default socket. Errors returned by the daemon
// match the sentinels of package api with errors.Is (api.ErrNotFound,
// api.ErrECapability…), and IsECapability recognises a capability denial
// whether it came back from the daemon or from the kernel as an errno.
package client
