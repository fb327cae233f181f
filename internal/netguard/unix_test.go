package netguard

import (
	"encoding/binary"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/coconut-os/coconut/internal/capability"
)

func rawUnixEvent(seq uint64, op uint8, addr string) []byte {
	b := make([]byte, unixEventSize)
	copy(b, rawEvent(seq, op, verbConnect, afUnix, 0, nil))
	binary.LittleEndian.PutUint16(b[24:], 0) // type and protocol: not set for Unix sockets
	binary.LittleEndian.PutUint16(b[26:], 0)
	binary.LittleEndian.PutUint32(b[eventSize:], uint32(len(addr)))
	copy(b[eventSize+4:], addr)
	return b
}

func TestDecodeUnixEvent(t *testing.T) {
	withPort := rawUnixEvent(1, 0, "/x")
	binary.LittleEndian.PutUint16(withPort[28:], 80)
	trailing := rawUnixEvent(1, 0, "/x")
	trailing[eventSize+4+5] = 'y'
	inetFamily := rawUnixEvent(1, 0, "/x")
	inetFamily[22] = afInet
	tests := []struct {
		name     string
		in       []byte
		wantName string
		err      error
	}{
		{"pathname connect", rawUnixEvent(5, 0, "/run/app.sock"), "/run/app.sock", nil},
		{"abstract sendto", rawUnixEvent(6, 1, "\x00app"), "@app", nil},
		{"escaped", rawUnixEvent(7, 0, "\x00a\x00b\n"), `@a\x00b\n`, nil},
		{"bind", rawUnixEvent(1, 2, "/x"), "", ErrMalformedEvent},
		{"allowed", withFlags(rawUnixEvent(1, 0, "/x"), evAllowed), "", ErrMalformedEvent},
		{"port set", withPort, "", ErrMalformedEvent},
		{"bytes past len", trailing, "", ErrMalformedEvent},
		{"inet family", inetFamily, "", ErrMalformedEvent},
		{"len too big", func() []byte {
			b := rawUnixEvent(1, 0, "/x")
			binary.LittleEndian.PutUint32(b[eventSize:], 200)
			return b
		}(), "", ErrMalformedEvent},
		{"unix family in inet event", rawEvent(1, 0, 0, afUnix, 0, nil), "", ErrMalformedEvent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := decodeEvent(tt.in)
			if !errors.Is(err, tt.err) {
				t.Fatalf("decodeEvent: %v, want %v", err, tt.err)
			}
			if err != nil {
				return
			}
			if e.Family != afUnix || e.Verb != "connect" || e.Addr.IsValid() || e.UnixName() != tt.wantName {
				t.Fatalf("decodeEvent = %+v (name %q), want a unix event named %q", e, e.UnixName(), tt.wantName)
			}
		})
	}
}

// listenUnix listens on a Unix stream socket (a path, or @name for an
// abstract one), accepting and closing every connection.
func listenUnix(t *testing.T, addr string) { acceptAll(t, "unix", addr) }

func TestUnixSockets(t *testing.T) {
	requireRoot(t)
	root := testRoot(t)
	g := loadGuard(t, root)
	agent, agentID := mkCgroup(t, filepath.Join(root, "agent"))
	plain, _ := mkCgroup(t, filepath.Join(root, "plain"))

	dir := t.TempDir()
	allowed, other := filepath.Join(dir, "allowed.sock"), filepath.Join(dir, "other.sock")
	tag := strconv.Itoa(os.Getpid())
	absOK, absNo := "@coconut-netguard-ok-"+tag, "@coconut-netguard-no-"+tag
	for _, a := range []string{allowed, other, absOK, absNo} {
		listenUnix(t, a)
	}
	dgram := filepath.Join(dir, "dgram.sock")
	pc, err := net.ListenPacket("unixgram", dgram)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })

	if err := g.SetPolicy(1, caps(t, "net.connect:unix:"+allowed, "net.connect:unix:"+absOK, "net.connect:127.0.0.1:1")); err != nil {
		t.Fatal(err)
	}
	if err := g.Bind(agentID, 1); err != nil {
		t.Fatal(err)
	}
	ops := []string{
		"unix connect " + allowed, "unix connect " + other, "unix connect " + absOK, "unix connect " + absNo,
		"unix sendto " + dgram,
	}
	want := []string{"ok", denied, "ok", denied, denied}
	tests := []struct {
		name string
		dir  string
		want []string
	}{
		{"agent", agent, want},
		{"not an agent", plain, []string{"ok", "ok", "ok", "ok", "ok"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := runOps(t, tt.dir, ops...)
			for i := range ops {
				if got[i] != tt.want[i] {
					t.Errorf("%s: %s, want %s", ops[i], got[i], tt.want[i])
				}
			}
		})
	}

	evs := waitEvents(t, g, 3)
	wantEv := []struct {
		op   Op
		name string
	}{{OpConnect, other}, {OpConnect, absNo}, {OpSendmsg, dgram}}
	for i, e := range evs {
		if e.CgroupID != agentID || e.Op != wantEv[i].op || e.UnixName() != wantEv[i].name || e.Allowed {
			t.Errorf("event %d = %+v (%q), want %v of %s", i, e, e.UnixName(), wantEv[i].op, wantEv[i].name)
		}
	}
	if d, _, err := g.Counters(); err != nil || d != uint64(len(evs)) {
		t.Errorf("Counters = %d, %v; want %d denies", d, err, len(evs))
	}

	// A grant takes effect on the next call, and so does its revoke.
	if err := g.SetPolicy(1, caps(t, "net.connect:unix:"+allowed, "net.connect:unix:"+other)); err != nil {
		t.Fatal(err)
	}
	if got := runOps(t, agent, "unix connect "+other, "unix connect "+absOK); got[0] != "ok" || got[1] != denied {
		t.Errorf("after grant of %s, revoke of %s: %q, want ok, %s", other, absOK, got, denied)
	}
	if err := g.SetPolicy(1, caps(t, "net.connect:unix:"+allowed)); err != nil {
		t.Fatal(err)
	}
	if got := runOps(t, agent, "unix connect "+other, "unix connect "+allowed); got[0] != denied || got[1] != "ok" {
		t.Errorf("after revoke of %s: %q, want %s, ok", other, got, denied)
	}
	waitEvents(t, g, 2)
	if n := unixEntries(t, g); n != 1 {
		t.Errorf("%d unix_rules entries, want 1", n)
	}
	if err := g.Unbind(agentID); err != nil {
		t.Fatal(err)
	}
	if err := g.RemovePolicy(1); err != nil {
		t.Fatal(err)
	}
	if n := unixEntries(t, g); n != 0 {
		t.Errorf("%d unix_rules entries after RemovePolicy, want 0", n)
	}
}

// TestUnixPathLimits checks a long abstract name (the program copies
// every byte) and that abstract names match with their exact length.
func TestUnixPathLimits(t *testing.T) {
	requireRoot(t)
	root := testRoot(t)
	g := loadGuard(t, root)
	agent, agentID := mkCgroup(t, filepath.Join(root, "agent"))
	tag := strconv.Itoa(os.Getpid())
	long := "@" + tag
	// One byte short of the grammar's longest (MaxUnixPath after the @):
	// x/sys/unix refuses to build a 108-byte abstract address.
	for len(long) < capability.MaxUnixPath {
		long += "x"
	}
	listenUnix(t, long)
	short := long[:len(long)-1]
	listenUnix(t, short)
	if err := g.SetPolicy(1, caps(t, "net.connect:unix:"+long)); err != nil {
		t.Fatal(err)
	}
	if err := g.Bind(agentID, 1); err != nil {
		t.Fatal(err)
	}
	if got := runOps(t, agent, "unix connect "+long, "unix connect "+short); got[0] != "ok" || got[1] != denied {
		t.Errorf("longest abstract name allowed, one byte shorter not: %q, want ok, %s", got, denied)
	}
	waitEvents(t, g, 1)
}

func unixEntries(t *testing.T, g *Guard) int {
	t.Helper()
	var k netguardUnixKey
	var v uint8
	n := 0
	it := g.objs.UnixRules.Iterate()
	for it.Next(&k, &v) {
		n++
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestUnixHooksRefused(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"connect_unix", errors.New("program connect_unix: load program: invalid argument"), true},
		{"sendmsg_unix", errors.New("program sendmsg_unix: apply CO-RE relocations: not supported"), true},
		{"inet program", errors.New("program connect4: load program: permission denied"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := unixHooksRefused(tt.err); got != tt.want {
				t.Fatalf("unixHooksRefused(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}
