package center

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
)

// FuzzRequestDecoding: no query string, action body, landing path or
// cookie crashes the Center's decoding, and every refusal is a 4xx.
func FuzzRequestDecoding(f *testing.F) {
	for _, s := range []string{"", "aid=31&type=cap.deny&result=deny", "before=9&limit=5", "type=agent.*", "aid=%zz", "aid=1&aid=2",
		`{"caps":["fs.read:/x"]}`, "/review/12", "1000.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "\x00"} {
		f.Add(s, []byte(s))
	}
	four := func(t *testing.T, what string, err error) {
		if err != nil {
			if st := statusOf(err); st < 400 || st > 499 {
				t.Fatalf("%s: status %d for %v", what, st, err)
			}
		}
	}
	f.Fuzz(func(t *testing.T, s string, body []byte) {
		q, err := parseFeed(s)
		four(t, "query", err)
		if err == nil && (q.Limit < 1 || q.Limit > maxPage) {
			t.Fatalf("limit %d", q.Limit)
		}
		for name := range actions {
			caps, err := parseAction(name, bytes.NewReader(body))
			four(t, "action "+name, err)
			if err == nil && (name == "grant" || name == "revoke") && len(caps) == 0 {
				t.Fatal("grant without caps accepted")
			}
		}
		_, err = parseAction(s, bytes.NewReader(body))
		four(t, "action name", err)
		if n, err := cleanNext(s); err == nil && (!strings.HasPrefix(n, "/") || strings.HasPrefix(n, "//")) {
			t.Fatalf("next %q let through as %q", s, n)
		} else {
			four(t, "next", err)
		}
		parseCookie(s)
		if _, err := parseNum("seq", s); err != nil && statusOf(err) != http.StatusBadRequest {
			t.Fatalf("seq: %v", err)
		}
	})
}
