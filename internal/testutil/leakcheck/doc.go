// Package leakcheck fails a test binary whose tests leave a coconut
// pin, cgroup subtree or process behind. Call it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(leakcheck.Main(m)) }
//
// Other test binaries run on the same machine at the same time, and
// their pins and subtrees exist too: only what this binary made is
// looked at, and only that is removed. To tell its own from theirs, Main
// (as root) moves the binary into a cgroup of its own, testbin-PID below
// its cgroup in the unified hierarchy and in the cpu, memory and pids v1
// hierarchies, which its daemons, and so their subtrees, v1 groups and
// agents, inherit. Where its cgroup delegates cpu, memory and pids (the
// daemon's quota would lose v2 mode one level down) it is not moved;
// TMPDIR is then set to a private directory instead, so the daemons'
// state dirs (t.TempDir) tell them apart. What it counts as this
// binary's once the tests are done (and not there before they started):
//   - any process or directory below its own cgroups;
//   - pin directories named like a subtree found there, owner records
//     naming one, and (without an own cgroup) those of state dirs below
//     its TMPDIR;
//   - cgroup and pin directories whose name ends in -PID (the roots the
//     netguard and enforce tests make beside the daemon's tree).
//
// Processes get a grace period (a seccomp holder exits on its own ten
// seconds after its last agent); whatever is still there then is
// reported, the run fails, and it is removed.
package leakcheck
