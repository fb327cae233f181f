// Package integration runs the real binaries (coconutd, coconut,
// dream-agent) as root against the real kernel: real cgroups, real users,
// real processes. Every test starts its own daemon in its own state
// directory, so each has its own cgroup subtree.
package integration
