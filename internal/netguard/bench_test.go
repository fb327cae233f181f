package netguard

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// BenchmarkConnect times loopback connect()+close() in three places in the
// same run: an agent cgroup under the guard (rule lookup), a cgroup in the
// guarded subtree that is not bound (the non-agent fast path), and a
// cgroup outside it (no coconut). ns/op is the agent's; the ratio metrics
// are the figure (goal: agent/none <= 1.3). Each place runs b.N
// connects three times, interleaved; the best of the three is reported.
//
//	go test -run '^$' -bench Connect -count 5 ./internal/netguard/
func BenchmarkConnect(b *testing.B) {
	requireRoot(b)
	root := testRoot(b)
	g := loadGuard(b, root)
	agent, id := mkCgroup(b, filepath.Join(root, "agent"))
	nonAgent, _ := mkCgroup(b, filepath.Join(root, "plain"))
	none, _ := mkCgroup(b, root+"-none")
	port := listenAccept(b, "127.0.0.1:0")
	if err := g.SetPolicy(1, caps(b, "net.connect:10.0.0.0/8:*", "net.connect:127.0.0.0/8:1-1000", "net.connect:127.0.0.1:"+strconv.Itoa(port))); err != nil {
		b.Fatal(err)
	}
	if err := g.Bind(id, 1); err != nil {
		b.Fatal(err)
	}
	benchThree(b, agent, nonAgent, none, fmt.Sprintf("bench 127.0.0.1 %d %d", port, b.N))
}

// BenchmarkConnectUnix is BenchmarkConnect for a Unix stream socket: an
// agent allowed the socket (address copy and hash lookup), a non-agent
// cgroup in the subtree (goal: nonagent/none ~ 1.0) and no coconut.
//
//	go test -run '^$' -bench ConnectUnix -count 5 ./internal/netguard/
func BenchmarkConnectUnix(b *testing.B) {
	requireRoot(b)
	root := testRoot(b)
	g := loadGuard(b, root)
	agent, id := mkCgroup(b, filepath.Join(root, "agent"))
	nonAgent, _ := mkCgroup(b, filepath.Join(root, "plain"))
	none, _ := mkCgroup(b, root+"-none")
	sock := filepath.Join(b.TempDir(), "bench.sock")
	acceptAll(b, "unix", sock)
	if err := g.SetPolicy(1, caps(b, "net.connect:unix:/run/other.sock", "net.connect:unix:"+sock)); err != nil {
		b.Fatal(err)
	}
	if err := g.Bind(id, 1); err != nil {
		b.Fatal(err)
	}
	benchThree(b, agent, nonAgent, none, fmt.Sprintf("unixbench %s %d", sock, b.N))
}

// benchThree runs the helper command cmd in the agent, non-agent and
// no-coconut cgroups, three interleaved rounds, best of each (the VM's
// noise, about ±15%, is larger than the difference measured), and reports
// ns/op of each and the two ratios.
func benchThree(b *testing.B, agent, nonAgent, none, cmd string) {
	run := func(dir string) float64 {
		res := runOps(b, dir, cmd)
		ns, ok := strings.CutPrefix(res[0], "ns=")
		if !ok {
			b.Fatalf("bench helper in %s: %s", dir, res[0])
		}
		v, err := strconv.ParseFloat(ns, 64)
		if err != nil {
			b.Fatal(err)
		}
		return v / float64(b.N)
	}
	b.ResetTimer()
	a, n, o := run(agent), run(nonAgent), run(none)
	for range 2 {
		a, n, o = min(a, run(agent)), min(n, run(nonAgent)), min(o, run(none))
	}
	b.ReportMetric(a, "ns/op")
	b.ReportMetric(n, "nonagent-ns/op")
	b.ReportMetric(o, "none-ns/op")
	b.ReportMetric(a/o, "agent/none")
	b.ReportMetric(n/o, "nonagent/none")
}
