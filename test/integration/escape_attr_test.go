package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/coconut-os/coconut/internal/testutil"
)

// attrCalls are every attribute call the supervisor performs itself
// (internal/supervise/emulate.go), by the names attrops knows them.
var attrCalls = []string{
	"chmod", "fchmodat", "fchmodat2", "chown", "lchown", "fchownat",
	"utime", "utimes", "futimesat", "utimensat",
	"setxattr", "lsetxattr", "setxattrat", "removexattr", "lremovexattr", "removexattrat",
}

// fdAttrCalls are their descriptor forms.
var fdAttrCalls = []string{"fchmod", "fchown", "fsetxattr", "fremovexattr"}

// attrSnapshot is everything an attribute call can change, ctime included:
// an unchanged ctime means nothing at all was done to the inode.
func attrSnapshot(t *testing.T, p string) string {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	s := fmt.Sprintf("mode=%o uid=%d gid=%d atime=%v mtime=%v ctime=%v", st.Mode, st.Uid, st.Gid, st.Atim, st.Mtim, st.Ctim)
	buf := make([]byte, 4096)
	n, _ := unix.Llistxattr(p, buf)
	for _, name := range strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00") {
		if name != "" {
			v := make([]byte, 256)
			m, _ := unix.Lgetxattr(p, name, v)
			s += fmt.Sprintf(" %s=%q", name, v[:max(m, 0)])
		}
	}
	return s
}

// TestEscapeAttrRace: a real agent that may write one directory of its own
// races every attribute call against its own user's key and key directory,
// from a second thread and from a clone(CLONE_VM) process rewriting the
// path, and the descriptor forms on a number another thread keeps
// dup2()ing between its work file and the key (which it may read): neither
// changes in any way (mode, owner, times, ctime, extended
// attributes), the allowed file takes every change and its cap.use rows
// name it, the refusals are cap.deny rows naming the key, and doctor's
// counters agree.
func TestEscapeAttrRace(t *testing.T) {
	cc := testutil.RequireCommand(t, "cc", "a C compiler to build the racer; .ci/run installs gcc")
	e := newEnv(t)
	uid, home := e.demo()
	// A key directory of the agent's own user, like ~/.ssh (not the demo
	// user's real ~/.ssh: other runs rewrite that fixture), and the
	// agent's work directory named one byte away from it: the racer flips
	// that byte, one store at a time.
	base := filepath.Join(home, ".ssh-attr-race-"+strconv.Itoa(os.Getpid()))
	ssh, notes := base+"-h", base+"-X"
	key, allowed := filepath.Join(ssh, "id_ed25519"), filepath.Join(notes, "id_ed25519")
	for _, d := range []string{ssh, notes} {
		os.RemoveAll(d)
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		os.Chown(d, int(uid), int(uid))
		t.Cleanup(func() { os.RemoveAll(d) })
	}
	for _, p := range []string{key, allowed} {
		if err := os.WriteFile(p, []byte("not a real key\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		os.Chown(p, int(uid), int(uid))
		// The attributes the remove calls take away.
		for _, x := range []string{"user.r1", "user.r2", "user.r3"} {
			if err := unix.Setxattr(p, x, []byte("orig"), 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	bin := filepath.Join(e.dir, "attrops")
	if out, err := exec.Command(cc, "-O2", "-pthread", "-o", bin, "../../internal/supervise/testdata/attrops.c").CombinedOutput(); err != nil {
		t.Fatalf("build attrops: %v\n%s", err, out)
	}
	keyBefore, sshBefore := attrSnapshot(t, key), attrSnapshot(t, ssh)

	// 100 races per class and file form, 36 classes: 3,600 raced calls (the
	// supervise package races each class 2,000 times against its own decider).
	const n = 100
	// One op per class, by the name attrops prints for it.
	ops := map[string]string{}
	for _, how := range []string{"thread", "vm"} {
		for _, c := range attrCalls {
			ops["race:"+how+":"+c] = fmt.Sprintf("race:%s:%s:%d:%s:%s", how, c, n, allowed, key)
		}
		// The directory too: ~/.ssh made 0755 was the first step of the leak.
		ops["race:"+how+":chmod-755"] = fmt.Sprintf("race:%s:chmod-755:%d:%s:%s", how, n, notes, ssh)
	}
	// The descriptor forms, on a number a thread keeps dup2()ing between
	// the work file and the key (which this agent may read, not write).
	for _, c := range fdAttrCalls {
		ops["fdrace:"+c] = fmt.Sprintf("fdrace:%s:%d:%s:%s", c, n, allowed, key)
	}
	args := []string{"agent", "run", "--name", "attr-racer", "--workdir", notes,
		"--cap", "fs.read:" + notes + "/**", "--cap", "fs.write:" + notes + "/**", "--cap", "fs.read:" + ssh + "/**",
		"--cap", "fs.exec:" + bin, "--"}
	// Every class must meet both files (succeed on the work file, be
	// refused on the key). On a loaded machine a racer can go unscheduled
	// for a whole class: such a class runs again, up to three rounds.
	var todo, aids []string
	for name := range ops {
		todo = append(todo, name)
	}
	for round := 1; len(todo) > 0; round++ {
		run := []string{bin}
		for _, name := range todo {
			run = append(run, ops[name])
		}
		aid := mustAID(t, e.must(append(args, run...)...))
		aids = append(aids, strconv.FormatUint(aid, 10))
		// Repeated denies of one object wait for their aggregate row
		// (issue 19: about ten a second per object and thread), and
		// this agent is refused thousands of times: minutes, not seconds.
		logs := e.waitLogFor(aid, "attrops done", 6*time.Minute)
		seen := map[string]map[int]int{}
		for _, l := range strings.Split(logs, "\n") {
			f := strings.Fields(l)
			if len(f) != 3 || ops[f[0]] == "" {
				continue
			}
			e, _ := strconv.Atoi(f[1])
			k, _ := strconv.Atoi(f[2])
			if seen[f[0]] == nil {
				seen[f[0]] = map[int]int{}
			}
			seen[f[0]][e] += k
		}
		var again []string
		for _, name := range todo {
			got := seen[name]
			ok := got[0]
			if strings.Contains(name, "remove") {
				ok += got[int(unix.ENODATA)]
			}
			if got[134] == 0 || ok == 0 {
				if round == 3 {
					t.Errorf("%s: errnos %v after %d rounds, want successes on the work file and ECAPABILITY on the key", name, got, round)
				}
				again = append(again, name)
			}
		}
		todo = again
		if round == 3 {
			break
		}
	}

	if got := attrSnapshot(t, key); got != keyBefore {
		t.Errorf("the key changed:\nbefore %s\nafter  %s", keyBefore, got)
	}
	if got := attrSnapshot(t, ssh); got != sshBefore {
		t.Errorf("the key directory changed:\nbefore %s\nafter  %s", sshBefore, got)
	}
	var st unix.Stat_t
	unix.Stat(allowed, &st)
	if m := st.Mode & 0o777; m != 0o600 && m != 0o640 && m != 0o604 || st.Mtim.Sec < 1000000001 || st.Mtim.Sec > 1000000004 {
		t.Errorf("the work file did not take the changes: mode %o mtime %v", m, st.Mtim)
	}
	if unix.Stat(notes, &st); st.Mode&0o777 != 0o755 {
		t.Errorf("the work directory did not take its chmod: mode %o", st.Mode&0o777)
	}
	keyDenies, uses := 0, 0
	for _, id := range aids {
		for _, r := range e.rows("--aid", id, "--type", "cap.deny") {
			if r.Object == key {
				keyDenies++
			}
		}
		for _, r := range e.rows("--aid", id, "--type", "cap.use") {
			if r.Object == allowed {
				uses++
			}
		}
	}
	if want := 2*len(attrCalls) + len(fdAttrCalls); keyDenies < want {
		t.Errorf("%d cap.deny rows for the key, want one per refused call (≥ %d)", keyDenies, want)
	}
	if uses == 0 {
		t.Errorf("no cap.use row names the file that was changed")
	}
	e.countersAgree(uint64(keyDenies))
	e.must("audit", "verify")
}
