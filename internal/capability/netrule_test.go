package capability

import (
	"errors"
	"net/netip"
	"testing"
)

func TestNetRule(t *testing.T) {
	tests := []struct {
		name string
		cap  Cap
		want NetRule
		err  error
	}{
		{"any host", Cap{"net", "connect", "*:443"}, NetRule{Any: true, Lo: 443, Hi: 443}, nil},
		{"v4 cidr", Cap{"net", "connect", "10.0.0.0/8:1-1024"}, NetRule{Prefix: netip.MustParsePrefix("10.0.0.0/8"), Lo: 1, Hi: 1024}, nil},
		{"v6 addr", Cap{"net", "bind", "[::1]:*"}, NetRule{Prefix: netip.MustParsePrefix("::1/128"), Lo: 1, Hi: 65535}, nil},
		{"not net", Cap{"fs", "read", "/tmp"}, NetRule{}, ErrUnknownDomain},
		{"bad scope", Cap{"net", "connect", "10.0.0.1"}, NetRule{}, ErrScope},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.cap.NetRule()
			if !errors.Is(err, tt.err) {
				t.Fatalf("NetRule: %v, want %v", err, tt.err)
			}
			if got != tt.want {
				t.Errorf("NetRule = %+v, want %+v", got, tt.want)
			}
		})
	}
}
