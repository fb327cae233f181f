// Package cgroup manages coconut's subtree of the cgroup v2 (unified)
// hierarchy, where every agent has its own directory. The directory's inode
// number is the agent's cgroup id, the value bpf_get_current_cgroup_id()
// returns in the kernel, so everything that keys on the AID keys on it.
//
// It works on pure cgroup v2 hosts (/sys/fs/cgroup is cgroup2) and on hybrid
// ones (cgroup2 at /sys/fs/cgroup/unified beside v1 controllers): identity,
// kill and freeze live in the unified hierarchy either way. Resource
// controllers are the quota package's business.
//
// Only directories below the daemon's own cgroup are ever created or
// removed, so the daemon never writes outside the subtree it was delegated.
package cgroup
