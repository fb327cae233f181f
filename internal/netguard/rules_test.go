package netguard

import (
	"errors"
	"net/netip"
	"slices"
	"testing"

	"github.com/coconut-os/coconut/internal/capability"
)

func TestMergeRanges(t *testing.T) {
	tests := []struct {
		name     string
		in, want []portRange
	}{
		{"empty", nil, nil},
		{"overlap", []portRange{{10, 20}, {15, 30}}, []portRange{{10, 30}}},
		{"adjacent", []portRange{{21, 30}, {10, 20}}, []portRange{{10, 30}}},
		{"disjoint sorted", []portRange{{50, 50}, {10, 20}}, []portRange{{10, 20}, {50, 50}}},
		{"contained", []portRange{{1, 65535}, {80, 80}}, []portRange{{1, 65535}}},
		{"top port", []portRange{{65535, 65535}, {65534, 65534}}, []portRange{{65534, 65535}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mergeRanges(tt.in); !slices.Equal(got, tt.want) {
				t.Errorf("mergeRanges(%v) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestCompile(t *testing.T) {
	p := netip.MustParsePrefix
	tests := []struct {
		name string
		caps []string
		want ruleSet
		err  error
	}{
		{"nothing", nil, ruleSet{}, nil},
		{"other domains ignored", []string{"fs.read:/tmp/**", "x.acme.email.send"}, ruleSet{}, nil},
		{"any host is both families", []string{"net.connect:*:443"}, ruleSet{
			{verbConnect, p("0.0.0.0/0")}: {{443, 443}},
			{verbConnect, p("::/0")}:      {{443, 443}},
		}, nil},
		{"folded into the more specific", []string{"net.connect:10.0.0.0/8:80", "net.connect:10.1.0.0/16:22", "net.bind:10.1.0.0/16:8080"}, ruleSet{
			{verbConnect, p("10.0.0.0/8")}:  {{80, 80}},
			{verbConnect, p("10.1.0.0/16")}: {{22, 22}, {80, 80}},
			{verbBind, p("10.1.0.0/16")}:    {{8080, 8080}},
		}, nil},
		{"same prefix merged", []string{"net.connect:[::1]:1-10", "net.connect:[::1]:11-20"}, ruleSet{
			{verbConnect, p("::1/128")}: {{1, 20}},
		}, nil},
		{"v4 does not fold into v6", []string{"net.connect:0.0.0.0/0:1", "net.connect:[::1]:2"}, ruleSet{
			{verbConnect, p("0.0.0.0/0")}: {{1, 1}},
			{verbConnect, p("::1/128")}:   {{2, 2}},
		}, nil},
		{"unknown net verb", nil, nil, ErrUnsupportedCap},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs, err := capability.ParseAll(tt.caps)
			if err != nil {
				t.Fatal(err)
			}
			if tt.err != nil {
				cs = []capability.Cap{{Domain: "net", Verb: "listen", Scope: "*:1"}}
			}
			got, err := compile(cs)
			if !errors.Is(err, tt.err) {
				t.Fatalf("compile: %v, want %v", err, tt.err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("compile = %v, want %v", got, tt.want)
			}
			for k, v := range tt.want {
				if !slices.Equal(got[k], v) {
					t.Errorf("%v: %v, want %v", k, got[k], v)
				}
			}
		})
	}
}

func TestKernelKey(t *testing.T) {
	k := kernelKey(5, ruleKey{verbBind, netip.MustParsePrefix("192.168.0.0/16")})
	if k.Prefixlen != 64+16 || k.Policy != 5 || k.Verb != verbBind || k.Family != afInet ||
		k.Addr != [16]byte{192, 168} {
		t.Errorf("kernelKey v4 = %+v", k)
	}
	k = kernelKey(5, ruleKey{verbConnect, netip.MustParsePrefix("::1/128")})
	if k.Prefixlen != 64+128 || k.Family != afInet6 || k.Addr[15] != 1 {
		t.Errorf("kernelKey v6 = %+v", k)
	}
}

// FuzzCompile checks that the folded rules answer exactly as the capability
// matcher does: the kernel's longest-match lookup must not allow more or
// less than the bundle.
func FuzzCompile(f *testing.F) {
	f.Add("net.connect:10.0.0.0/8:80", "net.connect:10.1.0.0/16:22", "10.1.2.3", uint16(80))
	f.Add("net.connect:*:443", "net.bind:127.0.0.1:8080", "::1", uint16(443))
	f.Add("net.connect:[2001:db8::/32]:1-1000", "net.connect:[2001:db8::1]:2000", "2001:db8::1", uint16(500))
	f.Add("net.connect:127.0.0.1:1", "fs.read:/x", "::ffff:127.0.0.1", uint16(1))
	f.Fuzz(func(t *testing.T, c1, c2, addr string, port uint16) {
		var cs []capability.Cap
		for _, s := range []string{c1, c2} {
			if c, err := capability.Parse(s); err == nil {
				cs = append(cs, c)
			}
		}
		rs, err := compile(cs)
		if err != nil {
			return
		}
		ip, err := netip.ParseAddr(addr)
		if err != nil {
			return
		}
		for _, verb := range []string{"connect", "bind"} {
			want := false
			for _, c := range cs {
				if c.Domain == "net" && c.Verb == verb && c.MatchAddr(ip, port) {
					want = true
				}
			}
			v := verbConnect
			if verb == "bind" {
				v = verbBind
			}
			if got := rs.allows(v, ip, port); got != want {
				t.Errorf("%v %s %v:%d: rules say %v, capabilities %v", cs, verb, ip, port, got, want)
			}
		}
	})
}
