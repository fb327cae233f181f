package capability

import (
	"net/netip"
	"testing"
)

func mustParse(t *testing.T, s string) Cap {
	t.Helper()
	c, err := Parse(s)
	if err != nil {
		t.Fatalf("Parse(%q): %v", s, err)
	}
	return c
}

func TestMatchPath(t *testing.T) {
	tests := []struct {
		name, cap, path string
		want            bool
	}{
		{"exact", "fs.read:/etc/hosts", "/etc/hosts", true},
		{"exact other", "fs.read:/etc/hosts", "/etc/passwd", false},
		{"exact not below", "fs.read:/etc", "/etc/hosts", false},
		{"doublestar dir itself", "fs.read:/home/m/p/**", "/home/m/p", true},
		{"doublestar child", "fs.read:/home/m/p/**", "/home/m/p/a", true},
		{"doublestar deep", "fs.read:/home/m/p/**", "/home/m/p/a/b/c.go", true},
		{"doublestar sibling prefix", "fs.read:/home/m/p/**", "/home/m/project", false},
		{"doublestar parent", "fs.read:/home/m/p/**", "/home/m", false},
		{"root doublestar", "fs.read:/**", "/", true},
		{"root doublestar deep", "fs.read:/**", "/x/y", true},
		{"root only", "fs.read:/", "/", true},
		{"root only not child", "fs.read:/", "/x", false},
		{"star component", "fs.read:/var/log/*.log", "/var/log/syslog.log", true},
		{"star empty", "fs.read:/var/log/*.log", "/var/log/.log", true},
		{"star no cross slash", "fs.read:/var/log/*.log", "/var/log/a/b.log", false},
		{"star middle", "fs.read:/home/*/p/**", "/home/m/p/x", true},
		{"star middle wrong", "fs.read:/home/*/p/**", "/home/m/q/x", false},
		{"star backtrack", "fs.read:/a/*b*c", "/a/xbybzc", true},
		{"star backtrack fail", "fs.read:/a/*b*c", "/a/xbybz", false},
		{"unexpanded tilde", "fs.read:~/p/**", "/home/m/p", false},
		{"relative path", "fs.read:/**", "etc/hosts", false},
		{"unclean path", "fs.read:/a/**", "/a/../etc/shadow", false},
		{"trailing slash path", "fs.read:/a/**", "/a/b/", false},
		{"empty path", "fs.read:/**", "", false},
		{"ssh key denied", "fs.read:/home/m/projects/dream-team/**", "/home/m/.ssh/id_ed25519", false},
		{"net cap", "net.connect:*:80", "/x", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mustParse(t, tt.cap).MatchPath(tt.path); got != tt.want {
				t.Fatalf("%s MatchPath(%q) = %v, want %v", tt.cap, tt.path, got, tt.want)
			}
		})
	}
}

func TestMatchAddr(t *testing.T) {
	tests := []struct {
		name, cap, ip string
		port          uint16
		want          bool
	}{
		{"exact", "net.connect:127.0.0.1:8080", "127.0.0.1", 8080, true},
		{"wrong port", "net.connect:127.0.0.1:8080", "127.0.0.1", 8081, false},
		{"wrong ip", "net.connect:127.0.0.1:8080", "127.0.0.2", 8080, false},
		{"cidr in", "net.connect:10.0.0.0/8:443", "10.200.3.4", 443, true},
		{"cidr out", "net.connect:10.0.0.0/8:443", "11.0.0.1", 443, false},
		{"range low", "net.connect:*:1000-2000", "1.1.1.1", 1000, true},
		{"range high", "net.connect:*:1000-2000", "1.1.1.1", 2000, true},
		{"range out", "net.connect:*:1000-2000", "1.1.1.1", 2001, false},
		{"any port", "net.connect:1.1.1.1:*", "1.1.1.1", 65535, true},
		{"port zero never", "net.connect:1.1.1.1:*", "1.1.1.1", 0, false},
		{"star host v6", "net.connect:*:443", "2001:db8::1", 443, true},
		{"v6 exact", "net.bind:[::1]:8080", "::1", 8080, true},
		{"v6 not v4 loopback", "net.bind:[::1]:8080", "127.0.0.1", 8080, false},
		{"v6 cidr", "net.connect:[2001:db8::/32]:443", "2001:db8:1::5", 443, true},
		{"v6 cidr out", "net.connect:[2001:db8::/32]:443", "2001:db9::5", 443, false},
		{"v4 mapped peer", "net.connect:127.0.0.1:80", "::ffff:127.0.0.1", 80, true},
		{"v4 cap v6 peer", "net.connect:0.0.0.0/0:80", "::2", 80, false},
		{"zone ignored", "net.connect:[fe80::/10]:80", "fe80::1%eth0", 80, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ip := netip.MustParseAddr(tt.ip)
			if got := mustParse(t, tt.cap).MatchAddr(ip, tt.port); got != tt.want {
				t.Fatalf("%s MatchAddr(%s, %d) = %v, want %v", tt.cap, ip, tt.port, got, tt.want)
			}
		})
	}
	if mustParse(t, "fs.read:/**").MatchAddr(netip.MustParseAddr("1.1.1.1"), 1) {
		t.Fatal("fs cap matched an address")
	}
	if mustParse(t, "net.connect:*:*").MatchAddr(netip.Addr{}, 1) {
		t.Fatal("invalid address matched")
	}
}

func TestMatchModel(t *testing.T) {
	c := mustParse(t, "inference:model=llama-*,tokens=100")
	if !c.MatchModel("llama-3") || c.MatchModel("gpt-4") || c.Tokens() != 100 {
		t.Fatalf("MatchModel/Tokens wrong for %s", c)
	}
	if mustParse(t, "inference:model=*").Tokens() != 0 {
		t.Fatal("unlimited scope reported a token limit")
	}
}

func TestCovers(t *testing.T) {
	tests := []struct {
		name, c, o string
		want       bool
	}{
		{"equal", "fs.read:/a/b", "fs.read:/a/b", true},
		{"different verb", "fs.read:/**", "fs.write:/a", false},
		{"subtree covers file", "fs.read:/a/**", "fs.read:/a/b/c", true},
		{"subtree covers dir itself", "fs.read:/a/**", "fs.read:/a", true},
		{"subtree covers subtree", "fs.read:/a/**", "fs.read:/a/b/**", true},
		{"subtree not parent", "fs.read:/a/b/**", "fs.read:/a/**", false},
		{"file not subtree", "fs.read:/a/b", "fs.read:/a/b/**", false},
		{"sibling", "fs.read:/a/**", "fs.read:/ab", false},
		{"root covers home", "fs.read:/**", "fs.read:~/x", true},
		{"home vs abs", "fs.read:/home/m/**", "fs.read:~/x", false},
		{"home subtree", "fs.read:~/**", "fs.read:~/p/**", true},
		{"home itself", "fs.read:~", "fs.read:~/p", false},
		{"star covers literal", "fs.read:/a/*/c", "fs.read:/a/b/c", true},
		{"star covers star", "fs.read:/a/*", "fs.read:/a/x*", true},
		{"narrow star not wider", "fs.read:/a/x*", "fs.read:/a/*", false},
		{"star not deeper", "fs.read:/a/*", "fs.read:/a/b/c", false},
		{"star subtree", "fs.read:/home/*/**", "fs.read:/home/m/p/**", true},
		{"net any", "net.connect:*:*", "net.connect:10.0.0.0/8:443", true},
		{"net cidr covers addr", "net.connect:10.0.0.0/8:443", "net.connect:10.1.2.3:443", true},
		{"net cidr covers smaller cidr", "net.connect:10.0.0.0/8:*", "net.connect:10.1.0.0/16:80-90", true},
		{"net smaller not larger", "net.connect:10.1.0.0/16:*", "net.connect:10.0.0.0/8:80", false},
		{"net port range", "net.connect:*:80-90", "net.connect:*:85", true},
		{"net port outside", "net.connect:*:80-90", "net.connect:*:79-85", false},
		{"net host not star", "net.connect:10.0.0.0/8:*", "net.connect:*:80", false},
		{"net v4 not v6", "net.connect:0.0.0.0/0:*", "net.connect:[::1]:80", false},
		{"net v6 cidr", "net.connect:[2001:db8::/32]:*", "net.connect:[2001:db8::1]:443", true},
		{"inference any", "inference:model=*", "inference:model=llama,tokens=10", true},
		{"inference glob", "inference:model=llama-*", "inference:model=llama-3*", true},
		{"inference glob wrong", "inference:model=llama-*", "inference:model=*", false},
		{"inference tokens within", "inference:model=*,tokens=100", "inference:model=x,tokens=100", true},
		{"inference tokens over", "inference:model=*,tokens=100", "inference:model=x,tokens=101", false},
		{"inference unlimited over limit", "inference:model=*,tokens=100", "inference:model=x", false},
		{"grant inner", "cap.grant:fs.read:~/projects/**", "cap.grant:fs.read:~/projects/a/**", true},
		{"grant inner wider", "cap.grant:fs.read:~/projects/a/**", "cap.grant:fs.read:~/projects/**", false},
		{"x unscoped covers scoped", "x.acme.send", "x.acme.send:team", true},
		{"x scoped equal", "x.acme.send:team", "x.acme.send:team", true},
		{"x scoped other", "x.acme.send:team", "x.acme.send:all", false},
		{"x scoped not unscoped", "x.acme.send:team", "x.acme.send", false},
		{"x other name", "x.acme.send", "x.acme.sendmail", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mustParse(t, tt.c).Covers(mustParse(t, tt.o)); got != tt.want {
				t.Fatalf("%s Covers %s = %v, want %v", tt.c, tt.o, got, tt.want)
			}
		})
	}
	if (Cap{}).Covers(Cap{}) {
		t.Fatal("zero Cap covers zero Cap")
	}
}
