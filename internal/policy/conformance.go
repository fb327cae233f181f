package policy

import (
	"fmt"
	"net/netip"
	"path"
	"strconv"
	"strings"

	"github.com/coconut-os/coconut/internal/capability"
)

// Case is one row of the conformance table: a bundle (capability strings;
// the System baseline beside them; for grants a ceiling and a delegation
// scope), an operation and the verdict every mechanism that decides the
// operation must reach.
//
// The expected verdicts of generated cases come from small oracles written
// apart from Decide (path.Match per component, netip prefixes, set
// membership), and the hand-written cases carry literal verdicts, so the
// policy test is not Decide compared with itself.
type Case struct {
	Name    string
	Caps    []string
	Ceiling []string // grant cases: nil, Caps is the ceiling
	ByAgent bool     // grant cases: granted by an agent holding Scope
	Scope   []string // grant cases: the granting agent's cap.grant scopes
	Op      Op
	Allow   bool
	Missing string // what a denial names; "" when allowed
	// FloorExact: the Landlock floor compiled from Caps as the ceiling
	// must reach this verdict too. False where the floor is coarser
	// (globs, the ELF interpreter's exec right): the floor must then
	// still allow what is allowed, and the supervisor decides the rest.
	FloorExact bool
}

// Bundle parses the case's capabilities with the System baseline.
func (c Case) Bundle() (Bundle, error) {
	var b Bundle
	for _, x := range []struct {
		dst *[]capability.Cap
		ss  []string
	}{{&b.Caps, c.Caps}, {&b.Ceiling, c.Ceiling}, {&b.Scope, c.Scope}} {
		if x.ss == nil {
			continue
		}
		caps, err := capability.ParseAll(x.ss)
		if err != nil {
			return Bundle{}, fmt.Errorf("case %s: %w", c.Name, err)
		}
		*x.dst = caps
	}
	b.Base, b.ByAgent = System, c.ByAgent
	return b, nil
}

// Want is the expected verdict.
func (c Case) Want() Verdict { return Verdict{Allow: c.Allow, Missing: c.Missing} }

// Conformance ports: nothing listens on them (connects are refused by
// the kernel when allowed, binds succeed).
const (
	PortOne   = 47001 // one port, one address
	PortRange = 47010 // PortRange..PortRange+5 on 127.0.0.0/8
	PortAny   = 47020 // any address
	PortBind  = 47030 // bind, one port
)

// Files lists the conformance tree under root: directories end in "/".
// Mechanism tests create it (files as copies of an executable, so that
// exec cases run) before running the file cases.
func Files(root string) []string {
	var out []string
	for _, p := range fsPaths {
		out = append(out, root+p)
	}
	return out
}

var (
	fsScopes = []string{"/a/**", "/a/f", "/a/*/x", "/b/*.txt", "/b/t.md"}
	// Paths ending in "/" are directories: only read.
	fsPaths = []string{"/a/", "/a/d/", "/a/f", "/a/g", "/a/d/x", "/a/d/y", "/b/t.txt", "/b/t.md", "/ab", "/e/f"}
	fsVerbs = []string{"read", "write", "exec"}
	// fsPairs are two-capability bundles: index into fsScopes.
	fsPairs = []struct {
		v1 string
		s1 int
		v2 string
		s2 int
	}{{"read", 0, "write", 2}, {"read", 3, "exec", 1}, {"write", 4, "exec", 4}, {"exec", 2, "read", 1},
		{"write", 0, "exec", 3}, {"read", 4, "write", 3}}
	accesses = []Access{Read, Write, Exec, Read | Write}
)

type fsCap struct{ verb, scope string }

// oracleMatch is a second reading of the fs scope grammar: * within a
// component (path.Match; the table's paths hold no other metacharacter),
// a last ** for the path and everything below it.
func oracleMatch(scope, p string) bool {
	ps, xs := strings.Split(scope[1:], "/"), strings.Split(p[1:], "/")
	if ps[len(ps)-1] == "**" {
		ps = ps[:len(ps)-1]
		if len(xs) < len(ps) {
			return false
		}
		xs = xs[:len(ps)]
	}
	if len(ps) != len(xs) {
		return false
	}
	for i := range ps {
		if ok, _ := path.Match(ps[i], xs[i]); !ok {
			return false
		}
	}
	return true
}

func oracleFile(caps []fsCap, p string, a Access) (bool, string) {
	has := func(verbs ...string) bool {
		for _, c := range caps {
			for _, v := range verbs {
				if c.verb == v && oracleMatch(c.scope, p) {
					return true
				}
			}
		}
		return false
	}
	switch {
	case a&Read != 0 && !has("read", "write", "exec"):
		return false, "fs.read:" + p
	case a&Write != 0 && !has("write"):
		return false, "fs.write:" + p
	case a&Exec != 0 && !has("exec"):
		return false, "fs.exec:" + p
	}
	return true, ""
}

func accessName(a Access) string {
	var s []string
	for _, x := range []struct {
		bit  Access
		name string
	}{{Read, "read"}, {Write, "write"}, {Exec, "exec"}} {
		if a&x.bit != 0 {
			s = append(s, x.name)
		}
	}
	return strings.Join(s, "+")
}

func fileCases(root string) []Case {
	bundles := [][]fsCap{nil}
	for _, v := range fsVerbs {
		for _, s := range fsScopes {
			bundles = append(bundles, []fsCap{{v, root + s}})
		}
	}
	for _, p := range fsPairs {
		bundles = append(bundles, []fsCap{{p.v1, root + fsScopes[p.s1]}, {p.v2, root + fsScopes[p.s2]}})
	}
	var out []Case
	for _, b := range bundles {
		var caps, names []string
		glob := false
		for _, c := range b {
			caps = append(caps, "fs."+c.verb+":"+c.scope)
			names = append(names, c.verb+":"+strings.TrimPrefix(c.scope, root))
			glob = glob || strings.Contains(strings.TrimSuffix(c.scope, "/**"), "*")
		}
		if len(names) == 0 {
			names = []string{"none"}
		}
		for _, rel := range fsPaths {
			dir := strings.HasSuffix(rel, "/")
			p := root + strings.TrimSuffix(rel, "/")
			for _, a := range accesses {
				if dir && a != Read {
					continue
				}
				ok, missing := oracleFile(b, p, a)
				out = append(out, Case{
					Name: fmt.Sprintf("fs[%s] %s %s", strings.Join(names, ","), accessName(a), strings.TrimSuffix(rel, "/")),
					Caps: caps, Op: File{Path: p, Access: a}, Allow: ok, Missing: missing,
					// A trailing /** is a Landlock tree rule, exact;
					// any other glob widens to its glob-free prefix.
					FloorExact: !glob,
				})
			}
		}
	}
	return out
}

type netCap struct {
	verb   string
	prefix string // "" for any address
	lo, hi uint16
}

func (c netCap) String() string {
	host := "*"
	if c.prefix != "" {
		p := netip.MustParsePrefix(c.prefix)
		if p.IsSingleIP() {
			host = p.Addr().String()
			if p.Addr().Is6() {
				host = "[" + host + "]"
			}
		} else {
			host = p.String()
			if p.Addr().Is6() {
				host = "[" + host + "]"
			}
		}
	}
	ports := strconv.Itoa(int(c.lo))
	if c.hi != c.lo {
		ports += "-" + strconv.Itoa(int(c.hi))
	}
	return "net." + c.verb + ":" + host + ":" + ports
}

func netCases() []Case {
	bundles := [][]netCap{
		nil,
		{{"connect", "127.0.0.1/32", PortOne, PortOne}},
		{{"connect", "127.0.0.0/8", PortRange, PortRange + 5}},
		{{"connect", "", PortAny, PortAny}},
		{{"bind", "127.0.0.1/32", PortBind, PortBind}},
		{{"connect", "::1/128", PortOne, PortOne}},
		{{"connect", "127.0.0.1/32", PortOne, PortOne}, {"bind", "127.0.0.2/32", PortBind, PortBind + 1}},
	}
	addrs := []string{"127.0.0.1", "127.0.0.2", "::1"}
	ports := []uint16{PortOne, PortOne + 1, PortRange - 1, PortRange, PortRange + 2, PortRange + 5, PortRange + 6, PortAny, PortBind, PortBind + 1, PortBind + 2}
	var out []Case
	for _, b := range bundles {
		var caps []string
		for _, c := range b {
			caps = append(caps, c.String())
		}
		name := strings.Join(caps, ",")
		if name == "" {
			name = "none"
		}
		for _, verb := range []string{"connect", "bind"} {
			for _, a := range addrs {
				ip := netip.MustParseAddr(a)
				for _, port := range ports {
					ok := false
					for _, c := range b {
						if c.verb == verb && port >= c.lo && port <= c.hi &&
							(c.prefix == "" || netip.MustParsePrefix(c.prefix).Contains(ip)) {
							ok = true
						}
					}
					ap := netip.AddrPortFrom(ip, port).String()
					c := Case{Name: fmt.Sprintf("net[%s] %s %s", name, verb, ap), Caps: caps,
						Op: Net{Verb: verb, Addr: ip, Port: port}, Allow: ok}
					if !ok {
						c.Missing = "net." + verb + ":" + ap
					}
					out = append(out, c)
				}
			}
		}
	}
	return out
}

func unixCases(root string) []Case {
	s1, s2 := root+"/s1", root+"/s2"
	bundles := [][]string{nil, {s1}, {"@coconut-conformance-x"}, {s1, "@coconut-conformance-x"}}
	ops := []string{s1, s2, "@coconut-conformance-x", "@coconut-conformance-y"}
	var out []Case
	for _, b := range bundles {
		var caps []string
		for _, s := range b {
			caps = append(caps, "net.connect:unix:"+s)
		}
		for _, o := range ops {
			ok := false
			for _, s := range b {
				ok = ok || s == o
			}
			c := Case{Name: fmt.Sprintf("unix[%s] %s", strings.Join(b, ","), strings.TrimPrefix(o, root)), Caps: caps,
				Op: Unix{Addr: strings.Replace(o, "@", "\x00", 1)}, Allow: ok}
			if !ok {
				c.Missing = "net.connect:unix:" + o
			}
			out = append(out, c)
		}
	}
	return out
}

func modelCases() []Case {
	bundles := []string{"", "inference:model=llama*", "inference:model=gpt-4o,tokens=100", "inference:model=*"}
	names := []string{"llama3:8b", "gpt-4o", "gpt-4o-mini", "mistral"}
	var out []Case
	for _, b := range bundles {
		var caps []string
		glob := ""
		if b != "" {
			caps = []string{b}
			glob = strings.TrimPrefix(strings.Split(b, ",")[0], "inference:model=")
		}
		for _, n := range names {
			ok, _ := path.Match(glob, n)
			ok = ok && b != ""
			c := Case{Name: fmt.Sprintf("model[%s] %s", b, n), Caps: caps, Op: Model{Name: n}, Allow: ok}
			if !ok {
				c.Missing = "inference:model=" + n
			}
			out = append(out, c)
		}
	}
	return out
}

func presentCases() []Case {
	held := []string{"", "x.acme.email.send", "x.acme.email.send:to=bob"}
	asked := []string{"x.acme.email.send", "x.acme.email.send:to=bob", "x.acme.email.read", "x.acme.email.send:to=eve"}
	var out []Case
	for _, h := range held {
		var caps []string
		if h != "" {
			caps = []string{h}
		}
		hn, hs, _ := strings.Cut(h, ":")
		for _, a := range asked {
			an, as, _ := strings.Cut(a, ":")
			ok := h != "" && hn == an && (hs == "" || hs == as)
			c := Case{Name: fmt.Sprintf("present[%s] %s", h, a), Caps: caps,
				Op: Present{Cap: mustParse(a)}, Allow: ok}
			if !ok {
				c.Missing = a
			}
			out = append(out, c)
		}
	}
	return out
}

// grantCases: grants within and beyond a ceiling, from a user and from
// an agent's cap.grant scope. The oracle is the table of Covers answers
// written out (covers).
func grantCases() []Case {
	ceilings := [][]string{nil, {"fs.read:/srv/**", "net.connect:127.0.0.0/8:1-1024", "x.acme.mail"}}
	scopes := []struct {
		byAgent bool
		scope   []string
	}{{false, nil}, {true, nil}, {true, []string{"fs.read:/srv/a/**", "net.connect:127.0.0.1:80"}}}
	asked := []string{"fs.read:/srv/a/b", "fs.read:/srv/a/**", "fs.read:/etc/x", "fs.write:/srv/a/b",
		"net.connect:127.0.0.1:80", "net.connect:127.0.0.1:8080", "x.acme.mail:to=bob", "x.acme.calendar"}
	held := []string{"fs.read:/srv/a/b"}
	// covers[bound][asked]: what each bound covers, by hand.
	covers := map[string]map[string]bool{
		"fs.read:/srv/**":                {"fs.read:/srv/a/b": true, "fs.read:/srv/a/**": true},
		"net.connect:127.0.0.0/8:1-1024": {"net.connect:127.0.0.1:80": true},
		"x.acme.mail":                    {"x.acme.mail:to=bob": true},
		"fs.read:/srv/a/**":              {"fs.read:/srv/a/b": true, "fs.read:/srv/a/**": true},
		"net.connect:127.0.0.1:80":       {"net.connect:127.0.0.1:80": true},
	}
	within := func(bound []string, a string) bool {
		for _, b := range bound {
			if b == a || covers[b][a] {
				return true
			}
		}
		return false
	}
	var out []Case
	for _, ceil := range ceilings {
		for _, sc := range scopes {
			for _, a := range asked {
				bound := ceil
				if bound == nil {
					bound = held
				}
				ok := within(bound, a) && (!sc.byAgent || within(sc.scope, a))
				from := "user"
				if sc.byAgent {
					from = "agent[" + strings.Join(sc.scope, ",") + "]"
				}
				c := Case{Name: fmt.Sprintf("grant[ceiling %s, from %s] %s", strings.Join(ceil, ","), from, a),
					Caps: held, Ceiling: ceil, ByAgent: sc.byAgent, Scope: sc.scope, Op: Grant{Cap: mustParse(a)}, Allow: ok}
				if !ok {
					c.Missing = a
				}
				out = append(out, c)
			}
		}
	}
	return out
}

// handCases are edge cases with literal verdicts: the baseline, implied
// reads, the root scope, an access the policy does not know.
func handCases(root string) []Case {
	const ldso, realLdso = "/lib64/ld-linux-x86-64.so.2", "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
	f := func(name string, caps []string, p string, a Access, allow bool, missing string, exact bool) Case {
		return Case{Name: "hand: " + name, Caps: caps, Op: File{Path: p, Access: a}, Allow: allow, Missing: missing, FloorExact: exact}
	}
	return []Case{
		f("baseline reads /etc/passwd", nil, "/etc/passwd", Read, true, "", true),
		f("baseline does not write /etc/passwd", nil, "/etc/passwd", Write, false, "fs.write:/etc/passwd", true),
		f("baseline reads procfs", nil, "/proc/cpuinfo", Read, true, "", true),
		f("baseline writes /dev/null", nil, "/dev/null", Read|Write, true, "", true),
		f("baseline does not read /etc/shadow", nil, "/etc/shadow", Read, false, "fs.read:/etc/shadow", true),
		f("baseline reads the ELF interpreter", nil, ldso, Read, true, "", true),
		// Paths are real: /lib64/ld-linux-x86-64.so.2 is a link on
		// merged-/usr systems, so the interpreter's exec cases name the
		// file it resolves to there (mechanism tests skip paths outside
		// their tree that do not exist on the machine).
		f("the ELF interpreter is no agent exec", nil, realLdso, Exec, false, "fs.exec:"+realLdso, false),
		f("the bundle may exec the ELF interpreter", []string{"fs.exec:" + realLdso}, realLdso, Exec, true, "", true),
		f("write implies read", []string{"fs.write:" + root + "/a/**"}, root+"/a/f", Read, true, "", true),
		f("exec implies read", []string{"fs.exec:" + root + "/a/f"}, root+"/a/f", Read, true, "", true),
		f("read does not imply write", []string{"fs.read:" + root + "/a/**"}, root+"/a/f", Write, false, "fs.write:"+root+"/a/f", true),
		f("read does not imply exec", []string{"fs.read:" + root + "/a/**"}, root+"/a/f", Exec, false, "fs.exec:"+root+"/a/f", true),
		f("write does not imply exec", []string{"fs.write:" + root + "/a/**"}, root+"/a/f", Exec, false, "fs.exec:"+root+"/a/f", true),
		f("the root scope", []string{"fs.read:/**"}, root+"/e/f", Read, true, "", true),
		f("a prefix is not a parent", []string{"fs.read:" + root + "/a/**"}, root+"/ab", Read, false, "fs.read:"+root+"/ab", true),
		{Name: "hand: no access", Op: File{Path: "/etc/passwd"}, Missing: ""},
		{Name: "hand: unknown verb", Caps: []string{"net.connect:*:1-65535"}, Op: Net{Verb: "listen", Addr: netip.MustParseAddr("127.0.0.1"), Port: 80},
			Missing: "net.listen:127.0.0.1:80"},
		{Name: "hand: v4-mapped is v4", Caps: []string{"net.connect:127.0.0.1:80"}, Op: Net{Verb: "connect", Addr: netip.MustParseAddr("::ffff:127.0.0.1"), Port: 80},
			Allow: true},
		{Name: "hand: bind is not connect", Caps: []string{"net.bind:127.0.0.1:80"}, Op: Net{Verb: "connect", Addr: netip.MustParseAddr("127.0.0.1"), Port: 80},
			Missing: "net.connect:127.0.0.1:80"},
		{Name: "hand: kernel capabilities are not presented", Caps: []string{"fs.read:/**"}, Op: Present{Cap: mustParse("fs.read:/etc")},
			Missing: "fs.read:/etc"},
		{Name: "hand: inference presented", Caps: []string{"inference:model=*"}, Op: Present{Cap: mustParse("inference:model=llama3")},
			Allow: true},
		{Name: "hand: empty model", Caps: []string{"inference:model=*"}, Op: Model{}, Missing: "inference:model="},
	}
}

func mustParse(s string) capability.Cap {
	c, err := capability.Parse(s)
	if err != nil {
		panic(err)
	}
	return c
}

// ByBundle groups cases by bundle, in table order, so that a mechanism
// test runs one agent per bundle.
func ByBundle(cases []Case) [][]Case {
	var out [][]Case
	at := map[string]int{}
	for _, c := range cases {
		k := fmt.Sprint(c.Caps, c.Ceiling, c.ByAgent, c.Scope)
		i, ok := at[k]
		if !ok {
			i = len(out)
			at[k] = i
			out = append(out, nil)
		}
		out[i] = append(out[i], c)
	}
	return out
}

// Conformance is the table, with file and Unix socket paths under root
// (absolute and clean; mechanism tests pass the tree they made with
// Files, the policy test any path).
func Conformance(root string) []Case {
	var out []Case
	out = append(out, fileCases(root)...)
	out = append(out, netCases()...)
	out = append(out, unixCases(root)...)
	out = append(out, modelCases()...)
	out = append(out, presentCases()...)
	out = append(out, grantCases()...)
	out = append(out, handCases(root)...)
	return out
}
