package capability

import (
	"errors"
	"strings"
	"testing"
)

func TestUnixScope(t *testing.T) {
	tests := []struct {
		name, in string
		addr     string // kernel form; "" when the parse must fail
		errHas   string
	}{
		{"pathname", "net.connect:unix:/run/app.sock", "/run/app.sock", ""},
		{"abstract", "net.connect:unix:@app", "\x00app", ""},
		{"path with colon", "net.connect:unix:/run/a:b", "/run/a:b", ""},
		{"longest path", "net.connect:unix:/" + strings.Repeat("a", MaxUnixPath-1), "/" + strings.Repeat("a", MaxUnixPath-1), ""},
		{"longest abstract", "net.connect:unix:@" + strings.Repeat("a", MaxUnixPath), "\x00" + strings.Repeat("a", MaxUnixPath), ""},
		{"glob star", "net.connect:unix:/run/*.sock", "", "no globs"},
		{"glob question", "net.connect:unix:@app?", "", "no globs"},
		{"glob class", "net.connect:unix:/run/[ab]", "", "no globs"},
		{"relative", "net.connect:unix:run/app.sock", "", "absolute path"},
		{"home", "net.connect:unix:~/app.sock", "", "absolute path"},
		{"empty", "net.connect:unix:", "", "absolute path"},
		{"empty abstract", "net.connect:unix:@", "", "empty abstract"},
		{"too long path", "net.connect:unix:/" + strings.Repeat("a", MaxUnixPath), "", "longer than"},
		{"too long abstract", "net.connect:unix:@" + strings.Repeat("a", MaxUnixPath+1), "", "longer than"},
		{"trailing slash", "net.connect:unix:/run/", "", "ends in '/'"},
		{"double slash", "net.connect:unix:/run//a", "", "empty path component"},
		{"dot dot", "net.connect:unix:/run/../a", "", `".." component`},
		{"bind", "net.bind:unix:/run/app.sock", "", "net.connect only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse(tt.in)
			if tt.addr == "" {
				if err == nil {
					t.Fatalf("Parse(%q) = %v, want an error", tt.in, c)
				}
				if !errors.Is(err, ErrScope) || !strings.Contains(err.Error(), tt.errHas) {
					t.Fatalf("Parse(%q): %v, want ErrScope saying %q", tt.in, err, tt.errHas)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if c.String() != tt.in || !c.IsUnix() {
				t.Fatalf("Parse(%q) = %q (unix %v)", tt.in, c, c.IsUnix())
			}
			got, ok := c.UnixSocket()
			if !ok || got != tt.addr {
				t.Fatalf("UnixSocket() = %q, %v; want %q", got, ok, tt.addr)
			}
			if _, err := c.NetRule(); !errors.Is(err, ErrScope) {
				t.Fatalf("NetRule() of a unix capability: %v, want ErrScope", err)
			}
		})
	}
}

func TestUnixCovers(t *testing.T) {
	p := func(s string) Cap {
		c, err := Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	tests := []struct {
		name string
		c, o string
		want bool
	}{
		{"same path", "net.connect:unix:/run/a", "net.connect:unix:/run/a", true},
		{"other path", "net.connect:unix:/run/a", "net.connect:unix:/run/b", false},
		{"path vs abstract", "net.connect:unix:/run/a", "net.connect:unix:@/run/a", false},
		{"tcp any vs unix", "net.connect:*:*", "net.connect:unix:/run/a", false},
		{"unix vs tcp", "net.connect:unix:/run/a", "net.connect:127.0.0.1:80", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := p(tt.c).Covers(p(tt.o)); got != tt.want {
				t.Fatalf("%s covers %s = %v, want %v", tt.c, tt.o, got, tt.want)
			}
		})
	}
	if _, ok := p("net.connect:127.0.0.1:80").UnixSocket(); ok {
		t.Fatal("a TCP capability reported a Unix socket")
	}
}
