package center

import (
	"errors"
	"net/http"
	"strings"
	"testing"
)

func TestParseFeed(t *testing.T) {
	tests := []struct {
		name, q string
		status  int
		check   func(feedQuery) bool
	}{
		{"empty", "", 0, func(q feedQuery) bool { return q.AID == nil && q.Limit == defaultPage }},
		{"all", "aid=31&type=cap.deny&result=deny&before=900&limit=50", 0, func(q feedQuery) bool {
			return *q.AID == 31 && q.Type == "cap.deny" && q.Result == "deny" && q.Before == 900 && q.Limit == 50
		}},
		{"prefix", "type=agent.*", 0, func(q feedQuery) bool { return q.Type == "agent.*" }},
		{"daemon rows", "aid=0", 0, func(q feedQuery) bool { return q.AID != nil && *q.AID == 0 }},
		{"blank fields", "aid=&type=&result=", 0, func(q feedQuery) bool { return q.AID == nil }},
		{"unknown", "follow=1", http.StatusBadRequest, nil},
		{"twice", "aid=1&aid=2", http.StatusBadRequest, nil},
		{"aid text", "aid=x", http.StatusBadRequest, nil},
		{"aid leading zero", "aid=031", http.StatusBadRequest, nil},
		{"aid overflow", "aid=18446744073709551616", http.StatusBadRequest, nil},
		{"type star inside", "type=a*b", http.StatusBadRequest, nil},
		{"type markup", "type=<img>", http.StatusBadRequest, nil},
		{"result", "result=maybe", http.StatusBadRequest, nil},
		{"limit", "limit=100000", http.StatusBadRequest, nil},
		{"escape", "aid=%zz", http.StatusBadRequest, nil},
		{"long", "type=" + strings.Repeat("a", maxQueryBytes), http.StatusRequestURITooLong, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := parseFeed(tt.q)
			if tt.status == 0 {
				if err != nil || !tt.check(q) {
					t.Fatalf("%+v, %v", q, err)
				}
				return
			}
			if statusOf(err) != tt.status {
				t.Fatalf("status %d (%v), want %d", statusOf(err), err, tt.status)
			}
		})
	}
}

func TestParseAction(t *testing.T) {
	tests := []struct {
		action, body string
		status       int
	}{
		{"quarantine", "", 0},
		{"kill", "{}", 0},
		{"grant", `{"caps":["fs.read:/x"]}`, 0},
		{"revoke", `{"caps":["fs.read:/x","net.connect:127.0.0.1:80"]}`, 0},
		{"grant", "", http.StatusBadRequest},
		{"grant", `{"caps":[]}`, http.StatusBadRequest},
		{"kill", `{"caps":["fs.read:/x"]}`, http.StatusBadRequest},
		{"grant", `{"caps":["fs.read:/x"],"more":1}`, http.StatusBadRequest},
		{"grant", `{"caps":["fs.read:/x"]} {}`, http.StatusBadRequest},
		{"grant", `{"caps":[""]}`, http.StatusBadRequest},
		{"grant", `{"caps":"fs.read:/x"}`, http.StatusBadRequest},
		{"grant", `{"caps":["a` + "\x00" + `"]}`, http.StatusBadRequest},
		{"grant", `{"caps":["` + strings.Repeat("a", maxBodyBytes) + `"]}`, http.StatusRequestEntityTooLarge},
		{"delete", "", http.StatusNotFound},
	}
	for _, tt := range tests {
		_, err := parseAction(tt.action, strings.NewReader(tt.body))
		if got := statusOf(err); (tt.status == 0 && err != nil) || (tt.status != 0 && got != tt.status) {
			t.Errorf("%s %.40q: %v (status %d), want %d", tt.action, tt.body, err, got, tt.status)
		}
	}
}

func TestCleanNext(t *testing.T) {
	for _, ok := range []string{"", "/", "/audit", "/plots", "/review/12", "/agents/3"} {
		if _, err := cleanNext(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"//evil.example", "/\\evil", "http://evil.example/", "javascript:alert(1)", "/review/0", "/review/x", "/audit?x=1", "/agents/01", "review/1", "/login?token=x"} {
		if _, err := cleanNext(bad); statusOf(err) != http.StatusBadRequest {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestCheckAddr(t *testing.T) {
	for _, ok := range []string{"127.0.0.1:0", "127.0.0.1:7880", "localhost:7880", "[::1]:7880", "127.1.2.3:80"} {
		if _, err := CheckAddr(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"0.0.0.0:7880", ":7880", "[::]:7880", "192.168.1.5:7880", "example.com:80", "127.0.0.1", "127.0.0.1:x", "127.0.0.1:70000", "[fe80::1%lo]:80", "[::ffff:10.0.0.1]:80"} {
		_, err := CheckAddr(bad)
		if err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, err := CheckAddr("0.0.0.0:7880"); !errors.Is(err, ErrNotLoopback) {
		t.Errorf("0.0.0.0: %v", err)
	}
}
