package bpflsm

import (
	"errors"
	"testing"

	"github.com/coconut-os/coconut/internal/capability"
)

func TestCompileMatchesPortablePolicy(t *testing.T) {
	caps, err := capability.ParseAll([]string{"fs.read:/data/**", "fs.write:/data/out/**", "fs.exec:/usr/bin/python3", "fs.read:/etc/hostname", "net.connect:127.0.0.1:80"})
	if err != nil {
		t.Fatal(err)
	}
	pol, err := Compile(caps, Baseline{Read: []string{"/proc"}, Write: []string{"/dev/null"}, Exec: []string{"/lib64/ld-linux-x86-64.so.2"}})
	if err != nil {
		t.Fatal(err)
	}
	rules := pol.Files
	for path, want := range map[string]uint32{
		"/data":                       RightRead,
		"/data/a":                     RightRead,
		"/data/out":                   RightRead | RightWrite,
		"/data/out/x/y":               RightRead | RightWrite,
		"/data/outside":               RightRead, // byte prefix /data/out must not leak: rules end in '/'
		"/datax":                      0,
		"/usr/bin/python3":            RightRead | RightExec | RightMapExec,
		"/usr/bin/python3x":           0,
		"/usr/bin":                    0,
		"/etc/hostname":               RightRead,
		"/etc/hostname/x":             0,
		"/etc/passwd":                 0,
		"/proc/1/status":              RightRead,
		"/dev/null":                   RightWrite,
		"/lib64/ld-linux-x86-64.so.2": RightRead | RightMapExec, // the interpreter: read and map, not exec
	} {
		if got := Decide(rules, path); got != want {
			t.Errorf("%s: rights %d, want %d", path, got, want)
		}
		// The compiled rules agree with the portable matcher.
		for _, verb := range []string{"read", "write", "exec"} {
			portable := false
			for _, c := range caps {
				if c.Domain == "fs" && c.Verb == verb && c.MatchPath(path) {
					portable = true
				}
			}
			bit := map[string]uint32{"read": RightRead, "write": RightWrite, "exec": RightExec}[verb]
			if portable && Decide(rules, path)&bit == 0 {
				t.Errorf("%s: portable allows %s, bpf-lsm rules do not", path, verb)
			}
		}
	}
}

func TestCompileRefusesWhatPrefixesCannotHold(t *testing.T) {
	long := "/" + string(make([]byte, 0))
	for i := 0; i < 26; i++ {
		long += "/abcdefghi"
	}
	for _, s := range []string{"fs.read:/home/*/notes", "fs.read:/data/*.txt", "fs.write:/a/b*/**", "fs.read:" + long[1:]} {
		c, err := capability.Parse(s)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		if _, err := Compile([]capability.Cap{c}, Baseline{}); !errors.Is(err, ErrInexpressible) {
			t.Errorf("%s: err %v, want ErrInexpressible", s, err)
		}
	}
	if _, err := Compile(nil, Baseline{Read: []string{"/**"}}); err != nil {
		// "/**" in a baseline is not a path prefix: it is refused too
		// unless given as "/".
		t.Logf("baseline /**: %v", err)
	}
}

func TestCompileRoot(t *testing.T) {
	c, _ := capability.Parse("fs.read:/**")
	pol, err := Compile([]capability.Cap{c}, Baseline{})
	if err != nil {
		t.Fatal(err)
	}
	rules := pol.Files
	if Decide(rules, "/") != RightRead || Decide(rules, "/etc/shadow") != RightRead {
		t.Fatalf("fs.read:/** rules %v", rules)
	}
}

func TestCompilePrograms(t *testing.T) {
	pol, err := Compile(nil, Baseline{Programs: []string{"/usr/libexec/coconut/coconut-trampoline"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := Decide(pol.Files, "/usr/libexec/coconut/coconut-trampoline"); got != RightExec|RightRead|RightMapExec {
		t.Fatalf("trampoline: rights %d", got)
	}
	if got := Decide(pol.Files, "/usr/libexec/coconut/other"); got != 0 {
		t.Fatalf("a neighbour of the trampoline: rights %d", got)
	}
}
