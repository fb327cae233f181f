// Package statedir is the layout of coconutd's state directory: where the
// host key, the trust store, the audit chain and its indexes are. It is a
// leaf that both the daemon (which makes these paths) and the command line
// (which reads them offline: `coconut audit verify`, `manifest verify`,
// `agent verify`) import, so that the CLI does not link the daemon.
package statedir

import "path/filepath"

// Default is the state directory when none is configured.
const Default = "/var/lib/coconut"

// Keys is the directory of the host key and the audit anchor's sealing keys.
func Keys(stateDir string) string { return filepath.Join(stateDir, "keys") }

// HostKeyPrefix is the host attestation key's path without its extension:
// PREFIX.key is private, PREFIX.pub public.
func HostKeyPrefix(stateDir string) string { return filepath.Join(Keys(stateDir), "host") }

// HostPub is where the host's public key is, for offline verification.
func HostPub(stateDir string) string { return HostKeyPrefix(stateDir) + ".pub" }

// Trust is the trust store.
func Trust(stateDir string) string { return filepath.Join(stateDir, "trust") }

// Chain is the audit chain.
func Chain(stateDir string) string { return filepath.Join(stateDir, "chain") }

// QueryIndex is the rebuildable on-disk query index (query.db: by aid,
// type, capability, result and time) of the audit chain.
func QueryIndex(stateDir string) string { return filepath.Join(stateDir, "index", "aid") }

// Merkle is the rebuildable Merkle tree cache of the audit chain.
func Merkle(stateDir string) string { return filepath.Join(stateDir, "index", "merkle") }

// ExportOTLP is the OTLP export's state: the last audit seq the collector
// acknowledged (issue 17), where a restart resumes.
func ExportOTLP(stateDir string) string { return filepath.Join(stateDir, "export", "otlp.json") }

// Witness holds one state file per configured witness (issue 17): the
// size it last cosigned, its last error and any alarm. The cosignatures
// themselves are evidence, in Chain's cosignatures.log.
func Witness(stateDir string) string { return filepath.Join(stateDir, "chain", "witness") }
