package capability

import (
	"net/netip"
	"testing"
)

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"fs.read:~/projects/dream-team/**", "fs.write:/tmp/out/**", "fs.exec:/usr/bin/python3",
		"fs.read:/a/*b*c", "net.connect:127.0.0.1:8080", "net.connect:10.0.0.0/8:443",
		"net.bind:[::1]:8080", "net.connect:*:1-1024", "inference:model=*",
		"inference:tokens=5,model=llama-*", "cap.grant:fs.read:~/projects/**",
		"cap.grant:cap.grant:x.a.b", "x.acme.email.send", "x.acme.email:scope", "fs.read:foo",
		"net.connect:[::ffff:1.2.3.4]:80", "", ":", "fs.read:/a//b",
		"net.connect:unix:/run/app.sock", "net.connect:unix:@name", "net.connect:unix:/run/*.sock",
		"net.bind:unix:/x", "net.connect:unix:", "net.connect:unix:@", "net.connect:unix:rel/x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := Parse(s)
		if err != nil {
			return
		}
		again, err := Parse(c.String())
		if err != nil {
			t.Fatalf("Parse(%q) = %#v but its String %q does not parse: %v", s, c, c.String(), err)
		}
		if again != c {
			t.Fatalf("round trip of %q: %#v != %#v", s, again, c)
		}
		if !c.Covers(c) {
			t.Fatalf("%s does not cover itself", c)
		}
		// Exercise the matchers; they must not panic on any accepted scope.
		e := c.Expand("/home/maya")
		e.MatchPath("/home/maya/x")
		e.MatchAddr(netip.MustParseAddr("10.0.0.1"), 80)
		e.MatchModel("llama")
		if a, ok := c.UnixSocket(); ok && (a == "" || len(a) > MaxUnixPath+1) {
			t.Fatalf("%s: unix address %q", c, a)
		}
	})
}
