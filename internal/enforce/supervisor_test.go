package enforce

import (
	"reflect"
	"testing"

	"github.com/coconut-os/coconut/internal/capability"
	pol "github.com/coconut-os/coconut/internal/policy"
	"github.com/coconut-os/coconut/internal/supervise"
)

func caps(t *testing.T, ss ...string) []capability.Cap {
	t.Helper()
	out, err := capability.ParseAll(ss)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestDeciderAllow: decisions follow the current bundle plus the baseline,
// with read implied by write and exec as in the floor.
func TestDeciderAllow(t *testing.T) {
	s := &supervisor{agents: map[uint64]*fsAgent{}}
	s.set(Agent{AID: 1, CgroupID: 9, Caps: caps(t, "fs.read:/home/u/p/**", "fs.write:/home/u/p/notes/**",
		"fs.exec:/usr/bin/git", "net.connect:127.0.0.1:80")})
	const r, w, x = supervise.Read, supervise.Write, supervise.Exec
	tests := []struct {
		name   string
		aid    uint64
		path   string
		access supervise.Access
		want   bool
	}{
		{"read in scope", 1, "/home/u/p/README", r, true},
		{"read the scope's directory", 1, "/home/u/p", r, true},
		{"read out of scope", 1, "/home/u/.ssh/id_ed25519", r, false},
		{"prefix is not a parent", 1, "/home/u/pp/x", r, false},
		{"write needs fs.write", 1, "/home/u/p/README", w, false},
		{"write in notes", 1, "/home/u/p/notes/a", w, true},
		{"read implied by write", 1, "/home/u/p/notes/a", r | w, true},
		{"exec granted", 1, "/usr/bin/git", x, true},
		{"read implied by exec", 1, "/usr/bin/git", r, true},
		{"exec not granted", 1, "/usr/bin/id", x, false},
		{"baseline library", 1, "/usr/lib/x86_64-linux-gnu/libc.so.6", r, true},
		{"baseline is not writable", 1, "/usr/lib/x86_64-linux-gnu/libc.so.6", w, false},
		{"dev null writable", 1, "/dev/null", r | w, true},
		{"unknown agent", 2, "/home/u/p/README", r, false},
		{"no access asked", 1, "/home/u/p/README", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := s.Allow(tt.aid, tt.path, tt.access); got != tt.want {
				t.Fatalf("Allow(%d, %s, %v) = %v", tt.aid, tt.path, tt.access, got)
			}
		})
	}
	// A revocation: the next decision uses the new bundle.
	s.set(Agent{AID: 1, Caps: caps(t, "fs.read:/home/u/p/docs/**")})
	if s.Allow(1, "/home/u/p/README", r) || !s.Allow(1, "/home/u/p/docs/x", r) {
		t.Fatal("decision did not follow the update")
	}
	if s.agents[1].cgroupID != 9 {
		t.Fatal("update lost the cgroup id")
	}
}

// TestDeciderAuditPolicy: every write and exec, the first read of a path;
// never the baseline or the measured files.
func TestDeciderAuditPolicy(t *testing.T) {
	s := &supervisor{agents: map[uint64]*fsAgent{}}
	s.set(Agent{AID: 1, Caps: caps(t, "fs.read:/p/**", "fs.write:/p/**")})
	ev := func(path string, a supervise.Access, allowed bool) supervise.Event {
		return supervise.Event{AID: 1, Path: path, Access: a, Allowed: allowed}
	}
	tests := []struct {
		name string
		ev   supervise.Event
		want bool
	}{
		{"first read", ev("/p/a", supervise.Read, true), true},
		{"second read", ev("/p/a", supervise.Read, true), false},
		{"other read", ev("/p/b", supervise.Read, true), true},
		{"write", ev("/p/a", supervise.Write, true), true},
		{"write again", ev("/p/a", supervise.Write, true), true},
		{"baseline read", ev("/usr/lib/libc.so.6", supervise.Read, true), false},
		{"measured file", ev("", supervise.Exec, true), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := s.AuditAllowed(tt.ev); got != tt.want {
				t.Fatalf("AuditAllowed = %v", got)
			}
		})
	}
}

// TestDeciderStaticNotSupervised: a static agent's reads are left to its
// floor, so a revocation cannot rely on the supervisor (the caller then
// quarantines); a supervised agent without a server is not mediated either.
func TestDeciderStaticNotSupervised(t *testing.T) {
	s := &supervisor{agents: map[uint64]*fsAgent{}, servers: map[uint64]*supervise.Server{1: {}, 2: {}}}
	s.set(Agent{AID: 1, Caps: caps(t, "fs.read:/p/**")})
	s.set(Agent{AID: 2, Caps: caps(t, "fs.read:/p/**"), Static: true})
	s.set(Agent{AID: 3, Caps: caps(t, "fs.read:/p/**")})
	for _, tt := range []struct {
		aid  uint64
		want bool
	}{{1, true}, {2, false}, {3, false}} {
		if got := s.Supervised(tt.aid); got != tt.want {
			t.Errorf("Supervised(%d) = %v", tt.aid, got)
		}
	}
	// The bundle still decides what is trapped (writes, execs).
	if !s.Allow(2, "/p/a", supervise.Read) || s.Allow(2, "/p/a", supervise.Write) {
		t.Error("static agent's decisions do not follow its bundle")
	}
}

// TestRecordRefusal: a call refused whatever the bundle is a cap.deny
// event with its own capability and object, counted as a kernel deny.
func TestRecordRefusal(t *testing.T) {
	p := &Portable{events: make(chan Event, 1)}
	s := &supervisor{p: p, agents: map[uint64]*fsAgent{}}
	s.set(Agent{AID: 1, CgroupID: 9, Caps: caps(t, "fs.read:/p/**")})
	done := make(chan error, 1)
	go func() {
		done <- s.Record(supervise.Event{AID: 1, TID: 5, Syscall: "mount", Cap: "sys.mount", Object: "mount /mnt", Errno: supervise.ECapability})
	}()
	ev := <-p.events
	ev.Reply <- nil
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	want := Event{Source: "supervisor", Seq: 1, CgroupID: 9, PID: 5, Cap: "sys.mount", Object: "mount /mnt", Errno: 134, Syscall: "mount"}
	ev.Reply = nil
	if !reflect.DeepEqual(ev, want) { // Event holds a func (Ack): not comparable with !=
		t.Fatalf("event %+v, want %+v", ev, want)
	}
	if s.denies.Load() != 1 {
		t.Fatalf("denies %d", s.denies.Load())
	}
}

// TestDeciderInterpreterExec: the ELF interpreter is in the baseline so
// that the kernel may load it inside every dynamic execve (Landlock checks
// EXECUTE on it there), but a direct execve of it — `ld.so ./file`, which
// runs any readable file — is decided on the bundle alone, and recorded
// when the bundle allows it.
func TestDeciderInterpreterExec(t *testing.T) {
	s := &supervisor{agents: map[uint64]*fsAgent{}}
	s.set(Agent{AID: 1, Caps: caps(t, "fs.read:/home/u/p/**", "fs.exec:/usr/bin/**")})
	s.set(Agent{AID: 2, Caps: caps(t, "fs.exec:/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")})
	const r, x = supervise.Read, supervise.Exec
	interpreters := append([]string{"/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"}, pol.System.Exec...)
	for _, ld := range interpreters {
		t.Run("direct exec "+ld, func(t *testing.T) {
			if s.Allow(1, ld, x) || s.Allow(1, ld, r|x) {
				t.Fatalf("direct exec of %s allowed without fs.exec on it", ld)
			}
		})
	}
	tests := []struct {
		name   string
		aid    uint64
		path   string
		access supervise.Access
		want   bool
	}{
		{"interpreter stays readable", 1, "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", r, true},
		{"baseline exec entry stays readable", 1, "/lib64/ld-linux-x86-64.so.2", r, true},
		{"readable file is not executable", 1, "/home/u/p/true", x, false},
		{"bundle exec still allowed", 1, "/usr/bin/perl", x, true},
		{"interpreter in the bundle", 2, "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", x, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := s.Allow(tt.aid, tt.path, tt.access); got != tt.want {
				t.Fatalf("Allow(%d, %s, %v) = %v", tt.aid, tt.path, tt.access, got)
			}
		})
	}
	// An exec the bundle allows is the bundle's use, never the baseline's:
	// the default policy records it.
	for _, ld := range interpreters {
		if !s.AuditAllowed(supervise.Event{AID: 2, Path: ld, Access: x, Allowed: true}) {
			t.Errorf("allowed exec of %s not recorded", ld)
		}
	}
}

// TestRecordPathless: a deny on a file with no path (a memfd) is a row on
// the kernel's name for it, with the access it asked for.
func TestRecordPathless(t *testing.T) {
	p := &Portable{events: make(chan Event, 1)}
	s := &supervisor{p: p, agents: map[uint64]*fsAgent{}}
	s.set(Agent{AID: 1, CgroupID: 9})
	done := make(chan error, 1)
	go func() {
		done <- s.Record(supervise.Event{AID: 1, TID: 5, Syscall: "execveat", Object: "/memfd:x (deleted)",
			Access: supervise.Exec, Errno: supervise.ECapability})
	}()
	ev := <-p.events
	ev.Reply <- nil
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	want := Event{Source: "supervisor", Seq: 1, CgroupID: 9, PID: 5, Cap: "fs.exec", Object: "/memfd:x (deleted)", Errno: 134, Syscall: "execveat"}
	ev.Reply = nil
	if !reflect.DeepEqual(ev, want) { // Event holds a func (Ack): not comparable with !=
		t.Fatalf("event %+v, want %+v", ev, want)
	}
}

// TestStillAllowedFollowsRevocation: a recorded allow is re-asked of the
// current bundle (Journaled.StillAllowed) before a restarted daemon
// answers it.
func TestStillAllowedFollowsRevocation(t *testing.T) {
	s := &supervisor{agents: map[uint64]*fsAgent{}}
	s.set(Agent{AID: 1, Caps: caps(t, "fs.write:/home/u/p/**")})
	rw := supervise.Read | supervise.Write
	if !s.StillAllowed(1, "/home/u/p/a", rw) {
		t.Fatal("granted write not allowed")
	}
	s.set(Agent{AID: 1, Caps: caps(t, "fs.read:/home/u/p/**")})
	if s.StillAllowed(1, "/home/u/p/a", rw) || !s.StillAllowed(1, "/home/u/p/a", supervise.Read) {
		t.Fatal("StillAllowed did not follow the revocation")
	}
	if s.StillAllowed(1, "", supervise.Read) || s.StillAllowed(2, "/home/u/p/a", supervise.Read) {
		t.Fatal("no path, or an unknown agent, allowed")
	}
}
