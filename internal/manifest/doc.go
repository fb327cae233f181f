// Package manifest parses and validates coconut/v1 workload manifests.
//
// A manifest is YAML: a named team of agent specs (command, capabilities,
// quotas, memory tiers, audit policy). Parse is strict and fails closed: it
// refuses malformed YAML, several documents, aliases, unknown or duplicate
// keys, wrong types and out-of-range values, and input that is empty or larger
// than MaxSize. docs/manifest.md describes every field.
//
// Errors: Parse reports every problem it finds, each a *Error carrying the
// file, the line and the field path ("agents[2].replicas"), joined with
// errors.Join and sorted by line, so the first one printed is the first in
// the document. Every *Error matches ErrInvalid under errors.Is, and errors.As
// finds the first one. Checks that only make sense once a field is valid
// (the ceiling check, the instance count) are skipped where that field
// already failed, so one mistake is reported once.
//
// The package does no I/O: callers read the file and verify its signature,
// and may use Manifest.Line to point their own errors (a missing command
// binary, say) at the line that caused them.
package manifest
