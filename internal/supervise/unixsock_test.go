package supervise

import (
	"encoding/binary"
	"errors"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// trapped reports whether a TrapUnixConnect filter must hand d over.
func trapped(d seccompData) bool {
	if d.Arch != auditArchX8664 {
		return false
	}
	switch d.Nr {
	case unix.SYS_CONNECT, unix.SYS_SENDMSG, unix.SYS_SENDMMSG:
		return true
	case unix.SYS_SENDTO:
		return d.Args[4] != 0
	}
	return false
}

// checkTrapUnix: the TrapUnixConnect filters (supervised, static, no
// listener) differ from their plain twins exactly on the trapped calls,
// which are notified with a listener and refused without one.
func checkTrapUnix(t *testing.T, traps [][]unix.SockFilter, d seccompData, plain ...[]unix.SockFilter) {
	t.Helper()
	for i, prog := range traps {
		got, err := runFilter(prog, d)
		if err != nil {
			t.Fatal(err)
		}
		want, err := runFilter(plain[i], d)
		if err != nil {
			t.Fatal(err)
		}
		if trapped(d) {
			want = retNotify
			if i == 2 {
				want = retDeny
			}
		}
		if got != want {
			t.Fatalf("trap filter %d: call %d args %#x: verdict %#x, want %#x", i, d.Nr, d.Args, got, want)
		}
		if got == retNotify && d.Arch == auditArchX8664 && unixCalls[d.Nr] && syscallName(d.Nr) == "syscall" {
			t.Fatalf("call %d notified, unknown to the supervisor", d.Nr)
		}
	}
}

func TestFilterTrapUnix(t *testing.T) {
	plain := [][]unix.SockFilter{Program(Options{}), Program(Options{Static: true}), Program(Options{NoListener: true})}
	traps := [][]unix.SockFilter{Program(Options{TrapUnixConnect: true}), Program(Options{TrapUnixConnect: true, Static: true}),
		Program(Options{TrapUnixConnect: true, NoListener: true})}
	tests := []struct {
		name string
		data seccompData
		want uint32 // of the supervised trap filter
	}{
		{"connect", sys(unix.SYS_CONNECT, 3, 0x1000, 110), retNotify},
		{"sendmsg", sys(unix.SYS_SENDMSG, 3, 0x1000, 0), retNotify},
		{"sendmmsg", sys(unix.SYS_SENDMMSG, 3, 0x1000, 2, 0), retNotify},
		{"sendto with address", sys(unix.SYS_SENDTO, 3, 0x1000, 1, 0, 0x2000, 110), retNotify},
		{"sendto with address above 4GiB", sys(unix.SYS_SENDTO, 3, 0x1000, 1, 0, 1<<40, 110), retNotify},
		{"sendto without address", sys(unix.SYS_SENDTO, 3, 0x1000, 1, 0, 0, 0), retAllow},
		{"write", sys(unix.SYS_WRITE, 3, 0x1000, 1), retAllow},
		{"openat still notified", sys(unix.SYS_OPENAT), retNotify},
		{"x32 connect nosys", sys(x32SyscallBit | unix.SYS_CONNECT), retNosys},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := runFilter(traps[0], tt.data)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("verdict %#x, want %#x", got, tt.want)
			}
			checkTrapUnix(t, traps, tt.data, plain...)
		})
	}
	// Without the option nothing of the network is trapped.
	for _, nr := range []int{unix.SYS_CONNECT, unix.SYS_SENDMSG, unix.SYS_SENDMMSG} {
		if got, _ := runFilter(plain[0], sys(nr, 3, 0x1000, 16)); got != retAllow {
			t.Errorf("plain filter: call %d verdict %#x", nr, got)
		}
	}
}

func sockaddrUn(family uint16, path string) []byte {
	b := make([]byte, 2+len(path))
	binary.LittleEndian.PutUint16(b, family)
	copy(b[2:], path)
	return b
}

func TestSockaddrVerdict(t *testing.T) {
	tests := []struct {
		name string
		raw  []byte
		kind sockKind
		key  string
	}{
		{"none", nil, sockOther, ""},
		{"one byte", []byte{1}, sockBad, ""},
		{"inet", sockaddrUn(unix.AF_INET, "\x00\x50\x7f\x00\x00\x01"), sockOther, ""},
		{"unspec", sockaddrUn(unix.AF_UNSPEC, ""), sockOther, ""},
		{"pathname", sockaddrUn(unix.AF_UNIX, "/run/x.sock"), sockUnix, "/run/x.sock"},
		{"pathname with NUL", sockaddrUn(unix.AF_UNIX, "/run/x.sock\x00junk"), sockUnix, "/run/x.sock"},
		{"abstract keeps its length", sockaddrUn(unix.AF_UNIX, "\x00name\x00x"), sockUnix, "\x00name\x00x"},
		{"unnamed", sockaddrUn(unix.AF_UNIX, ""), sockUnix, ""},
		{"longest", sockaddrUn(unix.AF_UNIX, "/"+strings.Repeat("a", 107)), sockUnix, "/" + strings.Repeat("a", 107)},
		{"unix too long", sockaddrUn(unix.AF_UNIX, "/"+strings.Repeat("a", 108)), sockBad, ""},
		{"inet6 storage", sockaddrUn(unix.AF_INET6, strings.Repeat("\x00", 126)), sockOther, ""},
		{"past storage", sockaddrUn(unix.AF_INET6, strings.Repeat("\x00", 127)), sockBad, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kind, key := sockaddrVerdict(tt.raw)
			if kind != tt.kind || key != tt.key {
				t.Errorf("got %d %q, want %d %q", kind, key, tt.kind, tt.key)
			}
		})
	}
}

// fakeMem is an agent address space of a few regions.
type fakeMem map[uint64][]byte

func (m fakeMem) read(addr uint64, b []byte) bool {
	for base, r := range m {
		if addr >= base && addr-base+uint64(len(b)) <= uint64(len(r)) {
			copy(b, r[addr-base:])
			return true
		}
	}
	return false
}

func msghdr(name uint64, namelen int32) []byte {
	b := make([]byte, mmsghdrSize)
	binary.LittleEndian.PutUint64(b, name)
	binary.LittleEndian.PutUint32(b[8:], uint32(namelen))
	return b
}

// unixOnly allows the Unix addresses listed and records nothing.
type unixOnly struct {
	*testDecider
	allow map[string]bool
}

func (u *unixOnly) AllowUnix(_ uint64, addr string) bool { return u.allow[addr] }

func TestUnixDecide(t *testing.T) {
	const (
		okPath  = 0x1000
		noPath  = 0x2000
		okAbs   = 0x3000
		noAbs   = 0x4000
		inet    = 0x5000
		hdrs    = 0x6000
		longAdr = 0x7000
	)
	mem := fakeMem{
		okPath: sockaddrUn(unix.AF_UNIX, "/run/ok.sock\x00"),
		noPath: sockaddrUn(unix.AF_UNIX, "/run/other.sock\x00"),
		okAbs:  sockaddrUn(unix.AF_UNIX, "\x00ok"),
		noAbs:  sockaddrUn(unix.AF_UNIX, "\x00ok\x00"), // same text, other length
		inet:   sockaddrUn(unix.AF_INET, "\x00\x50\x7f\x00\x00\x01"+strings.Repeat("\x00", 8)),
		hdrs: append(append(append(msghdr(okPath, 15), msghdr(0, 110)...), msghdr(inet, 16)...),
			msghdr(noAbs, 6)...),
		longAdr: sockaddrUn(unix.AF_UNIX, strings.Repeat("a", 200)),
	}
	srv := &Server{d: &unixOnly{testDecider: newTestDecider(nil), allow: map[string]bool{"/run/ok.sock": true, "\x00ok": true}}}
	tests := []struct {
		name   string
		data   seccompData
		want   unix.Errno
		object string
	}{
		{"connect allowed path", sys(unix.SYS_CONNECT, 3, okPath, 15), 0, ""},
		{"connect path shorter length still the path", sys(unix.SYS_CONNECT, 3, okPath, 14), 0, ""},
		{"connect other path", sys(unix.SYS_CONNECT, 3, noPath, 18), ECapability, "unix /run/other.sock"},
		{"connect allowed abstract", sys(unix.SYS_CONNECT, 3, okAbs, 5), 0, ""},
		{"connect abstract of another length", sys(unix.SYS_CONNECT, 3, noAbs, 6), ECapability, `unix @ok\x00`},
		{"connect inet left to the guard", sys(unix.SYS_CONNECT, 3, inet, 16), 0, ""},
		{"connect no length", sys(unix.SYS_CONNECT, 3, noPath, 0), 0, ""},
		{"connect negative length", sys(unix.SYS_CONNECT, 3, noPath, 0xffffffff), ECapability, "sockaddr length -1"},
		{"connect length past storage", sys(unix.SYS_CONNECT, 3, longAdr, 129), ECapability, "sockaddr length 129"},
		{"connect unix past sockaddr_un", sys(unix.SYS_CONNECT, 3, longAdr, 111), ECapability, "sockaddr length 111"},
		{"connect one byte", sys(unix.SYS_CONNECT, 3, okPath, 1), ECapability, "sockaddr length 1"},
		{"connect unnamed", sys(unix.SYS_CONNECT, 3, okPath, 2), ECapability, "unix "},
		{"connect unreadable", sys(unix.SYS_CONNECT, 3, 0x9000, 16), unix.EFAULT, ""},
		{"sendto no address", sys(unix.SYS_SENDTO, 3, 0, 1, 0, 0, 110), 0, ""},
		{"sendto other path", sys(unix.SYS_SENDTO, 3, 0, 1, 0, noPath, 18), ECapability, "unix /run/other.sock"},
		{"sendmsg allowed", sys(unix.SYS_SENDMSG, 3, hdrs, 0), 0, ""},
		{"sendmsg no name", sys(unix.SYS_SENDMSG, 3, hdrs+mmsghdrSize, 0), 0, ""},
		{"sendmsg inet", sys(unix.SYS_SENDMSG, 3, hdrs+2*mmsghdrSize, 0), 0, ""},
		{"sendmsg denied", sys(unix.SYS_SENDMSG, 3, hdrs+3*mmsghdrSize, 0), ECapability, `unix @ok\x00`},
		{"sendmsg unreadable header", sys(unix.SYS_SENDMSG, 3, 0x9000, 0), unix.EFAULT, ""},
		{"sendmmsg first three", sys(unix.SYS_SENDMMSG, 3, hdrs, 3, 0), 0, ""},
		{"sendmmsg all four", sys(unix.SYS_SENDMMSG, 3, hdrs, 4, 0), ECapability, `unix @ok\x00`},
		{"sendmmsg none", sys(unix.SYS_SENDMMSG, 3, hdrs, 0, 0), 0, ""},
		{"sendmmsg past the vector", sys(unix.SYS_SENDMMSG, 3, hdrs, 5, 0), unix.EFAULT, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ev Event
			got := srv.unixDecide(&tt.data, mem.read, &ev)
			if got != tt.want || (got == ECapability && ev.Object != tt.object) {
				t.Errorf("got %v %q, want %v %q", got, ev.Object, tt.want, tt.object)
			}
		})
	}
	// A Decider that knows no Unix allowlist refuses every Unix address.
	var ev Event
	plain := &Server{d: newTestDecider(nil)}
	if got := plain.unixDecide(&tests[0].data, mem.read, &ev); !errors.Is(got, ECapability) {
		t.Errorf("without UnixDecider: %v", got)
	}
}

// msghdrClamp: sendmsg clamps msg_namelen to sockaddr_storage, as the
// kernel does, rather than refusing it.
func TestMsgNameClamp(t *testing.T) {
	refs := msgName(msghdr(0x1000, 1000))
	if len(refs) != 1 || refs[0].length != sockaddrStorage {
		t.Errorf("msgName: %+v", refs)
	}
	if refs := msgName(msghdr(0x1000, -5)); len(refs) != 1 || refs[0].length != -5 {
		t.Errorf("negative: %+v", refs)
	}
}

// FuzzSockaddr: any address classifies without panicking, and a Unix key
// follows check_unix's form.
func FuzzSockaddr(f *testing.F) {
	f.Add(sockaddrUn(unix.AF_UNIX, "/run/x\x00y"))
	f.Add(sockaddrUn(unix.AF_UNIX, "\x00abs"))
	f.Add([]byte{2, 0, 0, 80})
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, raw []byte) {
		kind, key := sockaddrVerdict(raw)
		switch kind {
		case sockUnix:
			if len(key) > sockaddrUnMax-2 || len(raw) > sockaddrUnMax {
				t.Fatalf("key of %d bytes from %d", len(key), len(raw))
			}
			if !strings.HasPrefix(key, "\x00") && strings.IndexByte(key, 0) >= 0 {
				t.Fatalf("pathname key with NUL: %q", key)
			}
			if !strings.HasPrefix(unixObject(key), "unix ") {
				t.Fatalf("object %q", unixObject(key))
			}
		case sockOther:
			if len(raw) >= 2 && binary.LittleEndian.Uint16(raw) == unix.AF_UNIX {
				t.Fatal("AF_UNIX left to the guard")
			}
		}
	})
}

// FuzzAddrRefs: any registers and memory give references or an errno,
// never a panic, and never more references than messages.
func FuzzAddrRefs(f *testing.F) {
	f.Add(int32(unix.SYS_SENDMMSG), uint64(0x1000), uint64(3), append(msghdr(0x1000, 16), msghdr(0, 3)...))
	f.Add(int32(unix.SYS_SENDMSG), uint64(0x1000), uint64(0), msghdr(0x2000, -1))
	f.Add(int32(unix.SYS_CONNECT), uint64(0x1000), uint64(110), []byte{})
	f.Fuzz(func(t *testing.T, nr int32, a1, a2 uint64, mem []byte) {
		d := seccompData{Nr: nr, Arch: auditArchX8664, Args: [6]uint64{3, a1, a2, 0, a1, a2}}
		refs, e := addrRefs(&d, fakeMem{0x1000: mem}.read)
		if e != 0 && refs != nil {
			t.Fatal("refs with an errno")
		}
		if len(refs) > uioMaxIOV {
			t.Fatalf("%d refs", len(refs))
		}
		for _, r := range refs {
			if r.length == 0 || r.length > sockaddrStorage && nr != unix.SYS_CONNECT && nr != unix.SYS_SENDTO {
				t.Fatalf("ref %+v", r)
			}
		}
	})
}

// TestTrapUnixAgent: a probe under a TrapUnixConnect filter (its listener
// handed over by pidfd_getfd) reaches the Unix sockets its decider allows,
// by connect, sendto and sendmsg, and no other (ECAPABILITY and a
// net.connect row each); an inet connect is left alone; file calls are
// still decided.
func TestTrapUnixAgent(t *testing.T) {
	needRoot(t)
	t.Setenv(trapUnixEnv, "1")
	dir := tree(t)
	ok, no := dir+"/ok.sock", dir+"/no.sock"
	okDgram, noDgram := dir+"/ok.dgram", dir+"/no.dgram"
	tag := strconv.Itoa(os.Getpid())
	absOK, absNo := "@coconut-supervise-ok-"+tag, "@coconut-supervise-no-"+tag
	for _, a := range []string{ok, no, absOK, absNo} {
		l, err := net.Listen("unix", a)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
	}
	for _, a := range []string{okDgram, noDgram} {
		pc, err := net.ListenPacket("unixgram", a)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pc.Close() })
	}
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tl.Close() })
	port := strconv.Itoa(tl.Addr().(*net.TCPAddr).Port)
	tests := []struct {
		name, op string
		want     int
	}{
		{"connect allowed path", "uconnect:" + ok, 0},
		{"connect other path", "uconnect:" + no, 134},
		{"connect allowed abstract", "uconnect:" + absOK, 0},
		{"connect other abstract", "uconnect:" + absNo, 134},
		{"sendto allowed", "usendto:" + okDgram, 0},
		{"sendto other", "usendto:" + noDgram, 134},
		{"sendmsg allowed", "usendmsg:" + okDgram, 0},
		{"sendmsg other", "usendmsg:" + noDgram, 134},
		{"tcp left to the guard", "tcp:" + port, 0},
		{"read still decided", "read:" + dir + "/denied/f", 134},
	}
	ops := make([]string, len(tests))
	for i, tt := range tests {
		ops[i] = tt.op
	}
	d := &unixOnly{testDecider: newTestDecider(bundle(t, dir)), allow: map[string]bool{ok: true, "\x00" + absOK[1:]: true, okDgram: true}}
	got, _ := runAgent(t, AgentInfo{AID: 9}, d, ops...)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if n, found := got[tt.op]; !found || n != tt.want {
				t.Errorf("%s: errno %d (found %v), want %d", tt.op, n, found, tt.want)
			}
		})
	}
	rows := map[string]bool{}
	for _, ev := range d.Events() {
		if ev.Cap == "net.connect" && !ev.Allowed && ev.Errno == ECapability {
			rows[ev.Syscall+" "+ev.Object] = true
		}
	}
	for _, want := range []string{"connect unix " + no, "connect unix " + absNo, "sendto unix " + noDgram, "sendmsg unix " + noDgram} {
		if !rows[want] {
			t.Errorf("no row %q in %v", want, rows)
		}
	}
}
