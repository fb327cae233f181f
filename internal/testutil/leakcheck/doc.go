// Package leakcheck fails a test binary whose tests leave a coconut
// pin, cgroup subtree or process behind. Call it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(leakcheck.Main(m)) }
//
// Other test binaries run on the same machine at the same time, and
// their pins and subtrees exist too: only what this binary made is
// looked at, and only that is removed. To tell its own from theirs, Main
// gives the binary a private temporary directory (TMPDIR, so every
// t.TempDir and daemon state dir is below it) and, as root, a cgroup of
// its own (testbin-PID) that its daemons, and so their subtrees and
// agents, inherit. What it counts as this binary's once the tests are
// done (and not there before they started):
//   - any process or directory below its own cgroup;
//   - pin directories and v1 groups named like a subtree found there,
//     or whose owner record names a state dir below its TMPDIR;
//   - cgroup and pin directories whose name ends in -PID (the roots the
//     netguard and enforce tests make beside the daemon's tree).
//
// Processes get a grace period (a seccomp holder exits on its own ten
// seconds after its last agent); whatever is still there then is
// reported, the run fails, and it is removed.
package leakcheck
