// Package daemon wires coconutd together: configuration, state directory,
// host key, trust store, audit chain, cgroup subtree, agent registry and
// the API server, with readiness reported to systemd and a clean stop on
// SIGTERM that leaves every agent running for the next daemon to adopt.
package daemon
