package netguard

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coconut-os/coconut/internal/capability"
)

const denied = "errno=134"

// servers listens on loopback so allowed calls really succeed.
type servers struct {
	tcp4, tcp6, other4, other6, udp4, udp6 int
	free4, free6                           int // ports nothing listens on
}

func startServers(t *testing.T) servers {
	t.Helper()
	tcp := func(addr string) int { return listenAccept(t, addr) }
	udp := func(addr string) int {
		c, err := net.ListenPacket("udp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c.LocalAddr().(*net.UDPAddr).Port
	}
	free := func(addr string) int {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port
	}
	return servers{
		tcp4: tcp("127.0.0.1:0"), tcp6: tcp("[::1]:0"),
		other4: tcp("127.0.0.1:0"), other6: tcp("[::1]:0"),
		udp4: udp("127.0.0.1:0"), udp6: udp("[::1]:0"),
		free4: free("127.0.0.1:0"), free6: free("[::1]:0"),
	}
}

// listenAccept listens on addr, accepting and closing every connection.
func listenAccept(tb testing.TB, addr string) int {
	return acceptAll(tb, "tcp", addr).Addr().(*net.TCPAddr).Port
}

// acceptAll listens on network/addr (for "unix", a path or @name for an
// abstract socket), accepting and closing every connection until the test
// ends.
func acceptAll(tb testing.TB, network, addr string) net.Listener {
	tb.Helper()
	l, err := net.Listen(network, addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return l
}

func caps(t testing.TB, ss ...string) []capability.Cap {
	t.Helper()
	cs, err := capability.ParseAll(ss)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// waitEvents collects n events or fails after a timeout.
func waitEvents(t *testing.T, g *Guard, n int) []Event {
	t.Helper()
	var evs []Event
	timeout := time.After(10 * time.Second)
	for len(evs) < n {
		select {
		case e, ok := <-g.Events():
			if !ok {
				t.Fatalf("events closed after %d of %d: %v", len(evs), n, g.Err())
			}
			g.Ack(e)
			evs = append(evs, e)
		case <-timeout:
			t.Fatalf("got %d events, want %d", len(evs), n)
		}
	}
	return evs
}

func TestEnforce(t *testing.T) {
	requireRoot(t)
	s := startServers(t)
	root := testRoot(t)
	g := loadGuard(t, root)
	agent, agentID := mkCgroup(t, filepath.Join(root, "agent"))
	nested, _ := mkCgroup(t, filepath.Join(agent, "nested"))
	plain, _ := mkCgroup(t, filepath.Join(root, "plain"))
	outside, _ := mkCgroup(t, root+"-outside")

	p := strconv.Itoa
	err := g.SetPolicy(1, caps(t,
		"net.connect:127.0.0.1:"+p(s.tcp4), "net.connect:[::1]:"+p(s.tcp6),
		"net.connect:127.0.0.1:"+p(s.udp4), "net.connect:[::1]:"+p(s.udp6),
		"net.bind:127.0.0.1:"+p(s.free4), "fs.read:/tmp/**"))
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Bind(agentID, 1); err != nil {
		t.Fatal(err)
	}

	// agent is the result inside the agent's cgroups; a non-agent must
	// never see ECAPABILITY and gets what the kernel gives anyone.
	tests := []struct {
		name, op, agent string
		ev              Op
	}{
		{"tcp4 allowed", "connect tcp 127.0.0.1 " + p(s.tcp4), "ok", 0},
		{"tcp4 denied port", "connect tcp 127.0.0.1 " + p(s.other4), denied, OpConnect},
		{"tcp4 denied host", "connect tcp 127.0.0.2 " + p(s.tcp4), denied, OpConnect},
		{"tcp6 allowed", "connect tcp ::1 " + p(s.tcp6), "ok", 0},
		{"tcp6 denied", "connect tcp ::1 " + p(s.other6), denied, OpConnect},
		{"tcp v4-mapped allowed", "connect tcp ::ffff:127.0.0.1 " + p(s.tcp4), "ok", 0},
		{"tcp v4-mapped denied", "connect tcp ::ffff:127.0.0.1 " + p(s.other4), denied, OpConnect},
		{"udp4 sendto allowed", "sendto udp 127.0.0.1 " + p(s.udp4), "ok", 0},
		{"udp4 sendto denied", "sendto udp 127.0.0.1 " + p(s.other4), denied, OpSendmsg},
		{"udp6 sendto allowed", "sendto udp ::1 " + p(s.udp6), "ok", 0},
		{"udp6 sendto denied", "sendto udp ::1 " + p(s.other6), denied, OpSendmsg},
		{"udp v4-mapped sendto denied", "sendto udp ::ffff:127.0.0.1 " + p(s.other4), denied, OpSendmsg},
		{"connected udp allowed", "connudp udp 127.0.0.1 " + p(s.udp4), "ok", 0},
		{"connected udp denied", "connudp udp 127.0.0.1 " + p(s.other4), denied, OpConnect},
		{"connected udp6 denied", "connudp udp ::1 " + p(s.other6), denied, OpConnect},
		{"bind allowed", "bind tcp 127.0.0.1 " + p(s.free4), "ok", 0},
		{"bind denied port", "bind tcp 127.0.0.1 " + p(s.free6), denied, OpBind},
		{"bind any address denied", "bind tcp 0.0.0.0 " + p(s.free4), denied, OpBind},
		{"bind port 0 denied", "bind udp 127.0.0.1 0", denied, OpBind},
		{"bind6 denied", "bind udp ::1 " + p(s.free6), denied, OpBind},
		{"raw4 refused", "raw 4", denied, OpSockCreate},
		{"raw6 refused", "raw 6", denied, OpSockCreate},
	}
	ops := make([]string, len(tests))
	for i, tt := range tests {
		ops[i] = tt.op
	}
	agentRes := runOps(t, agent, ops...)
	nestedRes := runOps(t, nested, ops...)
	plainRes := runOps(t, plain, ops...)
	outsideRes := runOps(t, outside, ops...)
	var want []Event
	for pass, res := range [][]string{agentRes, nestedRes} {
		for i, tt := range tests {
			if res[i] != tt.agent {
				t.Errorf("%s (pass %d): agent got %s, want %s", tt.name, pass, res[i], tt.agent)
			}
			if tt.agent == denied {
				want = append(want, expectEvent(t, tt.op, tt.ev))
			}
		}
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for where, res := range map[string][]string{"subtree": plainRes, "outside": outsideRes} {
				if res[i] == denied || (tt.agent == "ok" && res[i] != "ok") {
					t.Errorf("non-agent (%s) got %s", where, res[i])
				}
			}
		})
	}

	evs := waitEvents(t, g, len(want))
	for i, e := range evs {
		w := want[i]
		if e.Seq != uint64(i+1) || e.CgroupID != agentID || e.PID == 0 ||
			e.Op != w.Op || e.Addr != w.Addr || e.Port != w.Port || e.Family != w.Family {
			t.Errorf("event %d = %+v, want seq %d cgroup %d %+v", i, e, i+1, agentID, w)
		}
	}
	denies, full, err := g.Counters()
	if err != nil || denies != uint64(len(want)) || full != 0 {
		t.Errorf("Counters() = %d, %d, %v; want %d, 0", denies, full, err, len(want))
	}
}

// expectEvent is the event a denied op should produce.
func expectEvent(t *testing.T, op string, kind Op) Event {
	f := strings.Fields(op)
	if kind == OpSockCreate {
		fam := uint8(afInet)
		if f[1] == "6" {
			fam = afInet6
		}
		return Event{Op: kind, Family: fam}
	}
	ip := netip.MustParseAddr(f[2]).Unmap()
	port, _ := strconv.Atoi(f[3])
	fam := uint8(afInet6)
	if ip.Is4() {
		fam = afInet
	}
	return Event{Op: kind, Addr: ip, Port: uint16(port), Family: fam}
}

func TestLongestMatchFolds(t *testing.T) {
	requireRoot(t)
	s := startServers(t)
	root := testRoot(t)
	g := loadGuard(t, root)
	agent, id := mkCgroup(t, filepath.Join(root, "agent"))
	p := strconv.Itoa
	// The /8 allows tcp4 everywhere in 127/8; the /32 adds other4 for one
	// host only. Longest match on 127.0.0.1 must still allow tcp4.
	if err := g.SetPolicy(3, caps(t, "net.connect:127.0.0.0/8:"+p(s.tcp4), "net.connect:127.0.0.1:"+p(s.other4))); err != nil {
		t.Fatal(err)
	}
	if err := g.Bind(id, 3); err != nil {
		t.Fatal(err)
	}
	got := runOps(t, agent,
		"connect tcp 127.0.0.1 "+p(s.tcp4), "connect tcp 127.0.0.1 "+p(s.other4),
		"connect tcp 127.0.0.2 "+p(s.tcp4), "connect tcp 127.0.0.2 "+p(s.other4))
	want := []string{"ok", "ok", "errno=111", denied} // 127.0.0.2 has no listener: refused, not denied
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("op %d: got %s, want %s", i, got[i], want[i])
		}
	}
}

func TestSharedPolicy(t *testing.T) {
	requireRoot(t)
	s := startServers(t)
	root := testRoot(t)
	g := loadGuard(t, root)
	a, aID := mkCgroup(t, filepath.Join(root, "a"))
	b, bID := mkCgroup(t, filepath.Join(root, "b"))
	p := strconv.Itoa
	if err := g.SetPolicy(7, caps(t, "net.connect:127.0.0.1:"+p(s.tcp4), "net.connect:[::1]:"+p(s.tcp6))); err != nil {
		t.Fatal(err)
	}
	for _, id := range []uint64{aID, bID} {
		if err := g.Bind(id, 7); err != nil {
			t.Fatal(err)
		}
	}
	if n := trieEntries(t, g); n != 2 {
		t.Errorf("two agents on one policy: %d trie entries, want 2", n)
	}
	ops := []string{"connect tcp 127.0.0.1 " + p(s.tcp4), "connect tcp 127.0.0.1 " + p(s.other4)}
	for _, dir := range []string{a, b} {
		if got := runOps(t, dir, ops...); got[0] != "ok" || got[1] != denied {
			t.Errorf("%s: %q, want [ok %s]", dir, got, denied)
		}
	}
	// Revoking the shared policy revokes it for both.
	if err := g.SetPolicy(7, nil); err != nil {
		t.Fatal(err)
	}
	if n := trieEntries(t, g); n != 0 {
		t.Errorf("after revoke: %d trie entries, want 0", n)
	}
	for _, dir := range []string{a, b} {
		if got := runOps(t, dir, ops...); got[0] != denied || got[1] != denied {
			t.Errorf("%s after revoke: %q", dir, got)
		}
	}
}

func trieEntries(t *testing.T, g *Guard) int {
	t.Helper()
	var (
		k   netguardLpmKey
		v   netguardPortRanges
		n   int
		it  = g.objs.Rules.Iterate()
		err error
	)
	for it.Next(&k, &v) {
		n++
	}
	if err = it.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestBindErrors(t *testing.T) {
	requireRoot(t)
	root := testRoot(t)
	g := loadGuard(t, root)
	_, id := mkCgroup(t, filepath.Join(root, "a"))
	if err := g.Bind(id, 9); !errors.Is(err, ErrUnknownPolicy) {
		t.Errorf("Bind to unset policy: %v, want ErrUnknownPolicy", err)
	}
	if err := g.Unbind(id); !errors.Is(err, ErrNotBound) {
		t.Errorf("Unbind unbound: %v, want ErrNotBound", err)
	}
	if err := g.SetPolicy(9, nil); err != nil {
		t.Fatal(err)
	}
	if err := g.Bind(id, 9); err != nil {
		t.Fatal(err)
	}
	if err := g.RemovePolicy(9); !errors.Is(err, ErrPolicyInUse) {
		t.Errorf("RemovePolicy in use: %v, want ErrPolicyInUse", err)
	}
	if err := g.Unbind(id); err != nil {
		t.Fatal(err)
	}
	if err := g.RemovePolicy(9); err != nil {
		t.Errorf("RemovePolicy: %v", err)
	}
	if err := g.SetPolicy(1, caps(t, "net.connect:*:1-2", "net.connect:*:4-5", "net.connect:*:7", "net.connect:*:9", "net.connect:*:11", "net.connect:*:13",
		"net.connect:*:15", "net.connect:*:17", "net.connect:*:19", "net.connect:*:21", "net.connect:*:23", "net.connect:*:25", "net.connect:*:27",
		"net.connect:*:29", "net.connect:*:31", "net.connect:*:33", "net.connect:*:35", "net.connect:*:37", "net.connect:*:39", "net.connect:*:41",
		"net.connect:*:43", "net.connect:*:45", "net.connect:*:47", "net.connect:*:49", "net.connect:*:51", "net.connect:*:53", "net.connect:*:55",
		"net.connect:*:57", "net.connect:*:59", "net.connect:*:61", "net.connect:*:63", "net.connect:*:65", "net.connect:*:67")); !errors.Is(err, ErrTooManyRanges) {
		t.Errorf("33 ranges: %v, want ErrTooManyRanges", err)
	}
}

func TestLoadRefusesNonCgroup(t *testing.T) {
	if _, err := Load(t.TempDir()); !errors.Is(err, ErrNotCgroup2) {
		t.Errorf("Load(tmpdir) = %v, want ErrNotCgroup2", err)
	}
	if _, err := Load("/nonexistent/netguard"); !errors.Is(err, ErrNotCgroup2) {
		t.Errorf("Load(missing) = %v, want ErrNotCgroup2", err)
	}
}

func TestRevokeNextCall(t *testing.T) {
	requireRoot(t)
	s := startServers(t)
	root := testRoot(t)
	g := loadGuard(t, root)
	agent, id := mkCgroup(t, filepath.Join(root, "agent"))
	if err := g.SetPolicy(1, caps(t, "net.connect:127.0.0.1:"+strconv.Itoa(s.tcp4))); err != nil {
		t.Fatal(err)
	}
	if err := g.Bind(id, 1); err != nil {
		t.Fatal(err)
	}
	const n = 10000
	cmd, done := helperCmd(t, agent, fmt.Sprintf("loop 127.0.0.1 %d %d", s.tcp4, n))
	defer done()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := readLines(out)
	var got []string
	for len(got) < n/3 {
		l, ok := <-lines
		if !ok {
			t.Fatalf("helper stopped after %d lines", len(got))
		}
		got = append(got, l)
	}
	if err := g.SetPolicy(1, nil); err != nil {
		t.Fatal(err)
	}
	revoked := monoNow()
	for l := range lines {
		got = append(got, l)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if len(got) != n {
		t.Fatalf("%d results, want %d", len(got), n)
	}
	var before, after, leaked int
	var firstDeny int64
	for _, l := range got {
		ts, res, _ := strings.Cut(l, " ")
		start, _ := strconv.ParseInt(ts, 10, 64)
		switch {
		case start <= revoked && res == "ok":
			before++
		case start > revoked && res != denied:
			leaked++
			t.Errorf("connect started %d ns after revoke returned: %s", start-revoked, res)
		case start > revoked:
			after++
		}
		if res == denied && firstDeny == 0 {
			firstDeny = start
		}
	}
	if before == 0 || after == 0 || leaked != 0 {
		t.Errorf("ok before revoke %d, denied after %d, allowed after %d", before, after, leaked)
	}
	t.Logf("%d allowed before, %d denied after; first denied connect started %v after the revoke returned",
		before, after, time.Duration(firstDeny-revoked))
}

func TestBurstReconciles(t *testing.T) {
	tests := []struct {
		name      string
		ringBytes uint32
		read      bool // drain Events while the burst runs
		wantLoss  bool
	}{
		{"default ring, reader draining", 0, true, false},
		{"4 KiB ring, nobody reading", 4096, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			requireRoot(t)
			root := testRoot(t)
			g, err := load(root, tt.ringBytes)
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			agent, id := mkCgroup(t, filepath.Join(root, "agent"))
			if err := g.SetPolicy(1, nil); err != nil {
				t.Fatal(err)
			}
			if err := g.Bind(id, 1); err != nil {
				t.Fatal(err)
			}
			const n = 100000
			var got []uint64
			drain := func(until time.Time) {
				for time.Now().Before(until) {
					select {
					case e := <-g.Events():
						g.Ack(e)
						got = append(got, e.Seq)
					case <-time.After(50 * time.Millisecond):
					}
				}
			}
			cmd, done := helperCmd(t, agent, fmt.Sprintf("burst 127.0.0.1 9 %d", n))
			defer done()
			start := time.Now()
			out := make(chan []byte, 1)
			go func() { b, _ := cmd.Output(); out <- b }()
			var res []byte
			for res == nil {
				select {
				case res = <-out:
				default:
					if tt.read {
						drain(time.Now().Add(10 * time.Millisecond))
					} else {
						time.Sleep(10 * time.Millisecond)
					}
				}
			}
			elapsed := time.Since(start)
			if strings.TrimSpace(string(res)) != "denied="+strconv.Itoa(n) {
				t.Fatalf("helper: %q, want denied=%d", res, n)
			}
			denies, full, err := g.Counters()
			if err != nil {
				t.Fatal(err)
			}
			for deadline := time.Now().Add(10 * time.Second); uint64(len(got))+full+g.Malformed() < denies && time.Now().Before(deadline); {
				drain(time.Now().Add(100 * time.Millisecond))
			}
			t.Logf("%d denies in %v: %d events, ringbuf_full %d, malformed %d", denies, elapsed, len(got), full, g.Malformed())
			if denies != n {
				t.Errorf("kernel denies %d, want %d", denies, n)
			}
			if uint64(len(got))+full+g.Malformed() != denies {
				t.Errorf("events %d + ringbuf_full %d != denies %d", len(got), full, denies)
			}
			if tt.wantLoss != (full > 0) {
				t.Errorf("ringbuf_full = %d, want loss %v", full, tt.wantLoss)
			}
			// Sequence numbers increase, and the gaps are exactly the lost events.
			var missing, prev uint64
			for _, s := range got {
				if s <= prev {
					t.Fatalf("sequence %d after %d", s, prev)
				}
				missing += s - prev - 1
				prev = s
			}
			missing += denies - prev
			if missing != full {
				t.Errorf("%d sequence numbers missing, ringbuf_full %d", missing, full)
			}
		})
	}
}

func readLines(r interface{ Read([]byte) (int, error) }) <-chan string {
	ch := make(chan string, 1024)
	go func() {
		defer close(ch)
		var buf []byte
		b := make([]byte, 64<<10)
		for {
			n, err := r.Read(b)
			buf = append(buf, b[:n]...)
			for {
				i := strings.IndexByte(string(buf), '\n')
				if i < 0 {
					break
				}
				ch <- string(buf[:i])
				buf = buf[i+1:]
			}
			if err != nil {
				return
			}
		}
	}()
	return ch
}
