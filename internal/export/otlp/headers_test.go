package otlp

import (
	"errors"
	"maps"
	"strings"
	"testing"
)

func TestParseHeaders(t *testing.T) {
	for _, tt := range []struct {
		name, in string
		want     map[string]string
		err      string
	}{
		{"two", "# the collector's key\nAuthorization: Bearer abc\n\nX-Scope-OrgID: team-a\n",
			map[string]string{"authorization": "Bearer abc", "x-scope-orgid": "team-a"}, ""},
		{"empty", "", map[string]string{}, ""},
		{"no colon", "Authorization Bearer\n", nil, "line 1"},
		{"bad name", "Bad Name: x\n", nil, "line 1"},
		{"control", "A: b\x01c\n", nil, "control character"},
		{"twice", "A: 1\na: 2\n", nil, "given twice"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseHeaders([]byte(tt.in))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || !errors.Is(err, ErrConfig) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || !maps.Equal(got, tt.want) {
				t.Fatalf("got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

// FuzzParseHeaders: a headers file parses into valid header fields or
// fails with ErrConfig.
func FuzzParseHeaders(f *testing.F) {
	f.Add([]byte("Authorization: Bearer abc\n# c\n\nX-A: b\n"))
	f.Add([]byte(":\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHeaders(b)
		if err != nil {
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("%v is not ErrConfig", err)
			}
			return
		}
		for k, v := range h {
			if k == "" || !isToken(k) || strings.ContainsAny(v, "\r\n\x00") {
				t.Fatalf("bad header %q: %q", k, v)
			}
		}
	})
}
