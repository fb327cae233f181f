package capability

import (
	"errors"
	"strings"
	"testing"
)

func TestParseAccepts(t *testing.T) {
	tests := []struct {
		name, in string
		want     Cap
		canon    string
	}{
		{"fs read home glob", "fs.read:~/projects/dream-team/**", Cap{"fs", "read", "~/projects/dream-team/**"}, ""},
		{"fs write abs", "fs.write:/tmp/out/**", Cap{"fs", "write", "/tmp/out/**"}, ""},
		{"fs exec file", "fs.exec:/usr/bin/python3", Cap{"fs", "exec", "/usr/bin/python3"}, ""},
		{"fs home itself", "fs.read:~", Cap{"fs", "read", "~"}, ""},
		{"fs root", "fs.read:/", Cap{"fs", "read", "/"}, ""},
		{"fs star in component", "fs.read:/var/log/*.log", Cap{"fs", "read", "/var/log/*.log"}, ""},
		{"net v4", "net.connect:127.0.0.1:8080", Cap{"net", "connect", "127.0.0.1:8080"}, ""},
		{"net cidr", "net.connect:10.0.0.0/8:443", Cap{"net", "connect", "10.0.0.0/8:443"}, ""},
		{"net v6", "net.bind:[::1]:8080", Cap{"net", "bind", "[::1]:8080"}, ""},
		{"net v6 canonicalised", "net.bind:[0:0::1]:8080", Cap{"net", "bind", "[::1]:8080"}, "net.bind:[::1]:8080"},
		{"net v6 cidr", "net.connect:[fd00::/8]:1-1024", Cap{"net", "connect", "[fd00::/8]:1-1024"}, ""},
		{"net any", "net.connect:*:443", Cap{"net", "connect", "*:443"}, ""},
		{"net full range is star", "net.connect:*:1-65535", Cap{"net", "connect", "*:*"}, "net.connect:*:*"},
		{"net one-port range", "net.connect:1.2.3.4:80-80", Cap{"net", "connect", "1.2.3.4:80"}, "net.connect:1.2.3.4:80"},
		{"net leading zero port", "net.connect:1.2.3.4:0080", Cap{"net", "connect", "1.2.3.4:80"}, "net.connect:1.2.3.4:80"},
		{"inference any", "inference:model=*", Cap{"inference", "", "model=*"}, ""},
		{"inference tokens", "inference:model=llama-*,tokens=5000", Cap{"inference", "", "model=llama-*,tokens=5000"}, ""},
		{"inference reordered", "inference:tokens=7,model=m", Cap{"inference", "", "model=m,tokens=7"}, "inference:model=m,tokens=7"},
		{"inference path model", "inference:model=meta-llama/Llama-3.1-8B", Cap{"inference", "", "model=meta-llama/Llama-3.1-8B"}, ""},
		{"cap grant", "cap.grant:fs.read:~/projects/**", Cap{"cap", "grant", "fs.read:~/projects/**"}, ""},
		{"cap grant canonical inner", "cap.grant:net.connect:[0::1]:80", Cap{"cap", "grant", "net.connect:[::1]:80"}, "cap.grant:net.connect:[::1]:80"},
		{"x bare", "x.acme.email.send", Cap{"x", "acme.email.send", ""}, ""},
		{"x scoped", "x.acme.email:team=ops,max=3", Cap{"x", "acme.email", "team=ops,max=3"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("Parse(%q) = %#v, want %#v", tt.in, got, tt.want)
			}
			canon := tt.canon
			if canon == "" {
				canon = tt.in
			}
			if got.String() != canon {
				t.Fatalf("String() = %q, want %q", got.String(), canon)
			}
			again, err := Parse(got.String())
			if err != nil || again != got {
				t.Fatalf("round trip: %#v, %v", again, err)
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	tests := []struct {
		name, in string
		kind     error
		msg      string
	}{
		{"empty", "", ErrSyntax, "empty capability"},
		{"no verb", "fs:/x", ErrSyntax, "DOMAIN.VERB"},
		{"dot only", ".", ErrSyntax, "DOMAIN.VERB"},
		{"unknown single word", "files", ErrUnknownDomain, "unknown capability"},
		{"unknown domain", "disk.read:/x", ErrUnknownDomain, `unknown domain "disk"`},
		{"unknown fs verb", "fs.delete:/x", ErrUnknownVerb, `unknown verb "delete"`},
		{"unknown net verb", "net.listen:*:80", ErrUnknownVerb, "unknown verb"},
		{"missing scope", "fs.read", ErrScope, "needs a scope"},
		{"empty scope", "fs.read:", ErrScope, "empty scope"},
		{"relative path", "fs.read:foo", ErrScope, "fs.read:foo: scope must be an absolute path or start with ~/"},
		{"other user home", "fs.read:~bob/x", ErrScope, "absolute path"},
		{"dotdot", "fs.read:/a/../etc", ErrScope, `".." component`},
		{"dot", "fs.read:/a/./b", ErrScope, `"." component`},
		{"double slash", "fs.read:/a//b", ErrScope, "empty path component"},
		{"trailing slash", "fs.read:/a/", ErrScope, "trailing '/'"},
		{"home trailing slash", "fs.read:~/", ErrScope, "trailing '/'"},
		{"doublestar middle", "fs.read:/a/**/b", ErrScope, "last component"},
		{"doublestar partial", "fs.read:/a/b**", ErrScope, "whole component"},
		{"NUL", "fs.read:/a\x00b", ErrSyntax, "control character"},
		{"too long path", "fs.read:/" + strings.Repeat("a", 4100), ErrScope, "longer than 4096"},
		{"too long", "fs.read:/" + strings.Repeat("a", MaxLen), ErrSyntax, "longer than"},
		{"bad utf8", "fs.read:/\xff", ErrSyntax, "UTF-8"},
		{"net hostname", "net.connect:example.com:443", ErrScope, "not an address"},
		{"net no port", "net.connect:10.0.0.1", ErrScope, "HOST:PORT"},
		{"net port zero", "net.connect:10.0.0.1:0", ErrScope, "1-65535"},
		{"net port big", "net.connect:10.0.0.1:65536", ErrScope, "1-65535"},
		{"net port sign", "net.connect:10.0.0.1:+80", ErrScope, "1-65535"},
		{"net reversed range", "net.connect:10.0.0.1:90-80", ErrScope, "reversed"},
		{"net host bits", "net.connect:10.0.0.1/8:80", ErrScope, "host bits set (write 10.0.0.0/8)"},
		{"net v6 unbracketed", "net.connect:::1:80", ErrScope, "brackets"},
		{"net v4 bracketed", "net.connect:[1.2.3.4]:80", ErrScope, "brackets"},
		{"net v4 mapped", "net.connect:[::ffff:1.2.3.4]:80", ErrScope, "IPv4-mapped"},
		{"net zone", "net.connect:[fe80::1%eth0]:80", ErrScope, ""},
		{"net empty host", "net.connect::80", ErrScope, "empty host"},
		{"inference bare", "inference", ErrScope, "needs a scope"},
		{"inference no model", "inference:tokens=5", ErrScope, "needs model"},
		{"inference bad key", "inference:model=x,temp=1", ErrScope, "unknown inference scope key"},
		{"inference dup", "inference:model=x,model=y", ErrScope, "duplicate"},
		{"inference zero tokens", "inference:model=x,tokens=0", ErrScope, "tokens"},
		{"inference bad model", "inference:model=a b", ErrScope, "not allowed"},
		{"inference verb", "inference.run:model=x", ErrUnknownDomain, "unknown domain"},
		{"grant grant", "cap.grant:cap.grant:fs.read:/x", ErrScope, "cannot grant cap.grant"},
		{"grant bad inner", "cap.grant:fs.read:foo", ErrScope, "fs.read:foo: scope must be"},
		{"x one label", "x.acme", ErrSyntax, "x.VENDOR.NAME"},
		{"x upper", "x.Acme.send", ErrSyntax, "lowercase"},
		{"x empty label", "x.acme..send", ErrSyntax, "lowercase"},
		{"x space scope", "x.acme.send:a b", ErrScope, "spaces"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.in)
			if err == nil {
				t.Fatalf("Parse(%q) accepted", tt.in)
			}
			if !errors.Is(err, tt.kind) {
				t.Fatalf("Parse(%q) = %v, want errors.Is %v", tt.in, err, tt.kind)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("Parse(%q) = %q, want it to contain %q", tt.in, err, tt.msg)
			}
		})
	}
}

func TestParseAll(t *testing.T) {
	caps, err := ParseAll([]string{"fs.read:/a", "x.a.b"})
	if err != nil || len(caps) != 2 || caps[1].Name() != "x.a.b" {
		t.Fatalf("ParseAll = %v, %v", caps, err)
	}
	_, err = ParseAll([]string{"fs.read:/a", "fs.read:rel"})
	if !errors.Is(err, ErrScope) || !strings.Contains(err.Error(), `capability 1 ("fs.read:rel")`) {
		t.Fatalf("ParseAll error = %v", err)
	}
}

func TestNameAndKernelEnforced(t *testing.T) {
	tests := []struct {
		in, name string
		kernel   bool
	}{
		{"fs.read:/a", "fs.read", true},
		{"net.bind:*:80", "net.bind", true},
		{"inference:model=*", "inference", false},
		{"cap.grant:fs.read:/a", "cap.grant", false},
		{"x.acme.email.send", "x.acme.email.send", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			c, err := Parse(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if c.Name() != tt.name || c.KernelEnforced() != tt.kernel {
				t.Fatalf("Name=%q KernelEnforced=%v, want %q %v", c.Name(), c.KernelEnforced(), tt.name, tt.kernel)
			}
		})
	}
}

func TestExpand(t *testing.T) {
	tests := []struct {
		name, in, home, want string
	}{
		{"home glob", "fs.read:~/p/**", "/home/maya", "fs.read:/home/maya/p/**"},
		{"home itself", "fs.write:~", "/home/maya", "fs.write:/home/maya"},
		{"root home", "fs.read:~/x", "/", "fs.read:/x"},
		{"absolute untouched", "fs.read:/etc/hosts", "/home/maya", "fs.read:/etc/hosts"},
		{"grant inner", "cap.grant:fs.read:~/p/**", "/home/maya", "cap.grant:fs.read:/home/maya/p/**"},
		{"relative home ignored", "fs.read:~/x", "home", "fs.read:~/x"},
		{"empty home ignored", "fs.read:~/x", "", "fs.read:~/x"},
		{"net untouched", "net.connect:*:80", "/home/maya", "net.connect:*:80"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			got := c.Expand(tt.home)
			if got.String() != tt.want {
				t.Fatalf("Expand = %q, want %q", got, tt.want)
			}
			if _, err := Parse(got.String()); err != nil {
				t.Fatalf("expanded cap does not parse: %v", err)
			}
		})
	}
}
