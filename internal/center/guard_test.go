package center

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// TestGuards: what every request must satisfy is checked before any
// service is reached (this Center has none: a request that got through
// would crash the test).
func TestGuards(t *testing.T) {
	c, err := Listen(Config{Addr: "127.0.0.1:0", Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer c.ln.Close()
	host := c.Addr()
	link, err := c.LoginLink(1000, "/audit")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.LoginLink(1000, "//evil.example"); err == nil {
		t.Fatal("a login link to another site was issued")
	}
	u, _ := url.Parse(link)

	do := func(method, target string, hdr map[string]string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, target, strings.NewReader(""))
		r.Host = host
		for k, v := range hdr {
			if k == "Host" {
				r.Host = v
				continue
			}
			r.Header.Set(k, v)
		}
		w := httptest.NewRecorder()
		c.ServeHTTP(w, r)
		return w
	}
	w := do("GET", u.RequestURI(), nil)
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/audit" {
		t.Fatalf("login: %d %v", w.Code, w.Header())
	}
	ck := w.Result().Cookies()[0]
	if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/" {
		t.Fatalf("cookie %+v", ck)
	}
	cookie := ck.Name + "=" + ck.Value
	s, _ := c.auth.lookup(ck.Value)
	origin := "http://" + host
	_, sid, _ := strings.Cut(ck.Value, ".")

	tests := []struct {
		name, method, target string
		hdr                  map[string]string
		status               int
		says                 string
	}{
		{"reused link", "GET", u.RequestURI(), nil, 401, "already used"},
		{"forged link", "GET", "/login?token=" + secret(), nil, 401, "not one this Center issued"},
		{"malformed link", "GET", "/login?token=abc", nil, 401, "malformed"},
		{"two tokens", "GET", u.RequestURI() + "&token=x", nil, 401, "exactly one token"},
		{"no cookie", "GET", "/api/agents", nil, 401, "not logged in"},
		{"no cookie page", "GET", "/review/1", nil, 401, "coconut center"},
		{"another uid's cookie", "GET", "/api/agents", map[string]string{"Cookie": ck.Name + "=0." + sid}, 401, "not valid here"},
		{"forged cookie", "GET", "/", map[string]string{"Cookie": ck.Name + "=1000." + secret()}, 401, "not valid here"},
		{"rebinding host", "GET", "/api/agents", map[string]string{"Cookie": cookie, "Host": "evil.example:" + u.Port()}, 421, "DNS rebinding"},
		{"no host port", "GET", "/", map[string]string{"Cookie": cookie, "Host": "localhost"}, 421, "not this Center"},
		{"long query", "GET", "/audit?type=" + strings.Repeat("a", maxQueryBytes+1), map[string]string{"Cookie": cookie}, 414, "at most"},
		{"post no origin", "POST", "/api/agents/1/kill", map[string]string{"Cookie": cookie, "X-CSRF-Token": s.csrf}, 403, "no Origin"},
		{"post foreign origin", "POST", "/api/agents/1/kill", map[string]string{"Cookie": cookie, "X-CSRF-Token": s.csrf, "Origin": "http://evil.example"}, 403, "not this Center"},
		{"post null origin", "POST", "/api/agents/1/kill", map[string]string{"Cookie": cookie, "X-CSRF-Token": s.csrf, "Origin": "null"}, 403, "not this Center"},
		{"post cross-site", "POST", "/api/agents/1/kill", map[string]string{"Cookie": cookie, "X-CSRF-Token": s.csrf, "Origin": origin, "Sec-Fetch-Site": "cross-site"}, 403, "Sec-Fetch-Site"},
		{"post no csrf", "POST", "/api/agents/1/kill", map[string]string{"Cookie": cookie, "Origin": origin}, 403, "CSRF"},
		{"post wrong csrf", "POST", "/api/agents/1/kill", map[string]string{"Cookie": cookie, "Origin": origin, "X-CSRF-Token": secret()}, 403, "CSRF"},
		{"post without session", "POST", "/api/agents/1/kill", map[string]string{"Origin": origin, "X-CSRF-Token": s.csrf}, 401, "not logged in"},
		{"bad aid", "POST", "/api/agents/x/kill", map[string]string{"Cookie": cookie, "Origin": origin, "X-CSRF-Token": s.csrf}, 400, "positive number"},
		{"bad action", "POST", "/api/agents/1/explode", map[string]string{"Cookie": cookie, "Origin": origin, "X-CSRF-Token": s.csrf}, 404, "no action"},
		{"get an action", "GET", "/api/agents/1/kill", map[string]string{"Cookie": cookie}, 404, "no such page"},
		{"unknown page", "GET", "/etc/passwd", map[string]string{"Cookie": cookie}, 404, "no such page"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := do(tt.method, tt.target, tt.hdr)
			if w.Code != tt.status || !strings.Contains(w.Body.String(), tt.says) {
				t.Fatalf("%d %s, want %d saying %q", w.Code, w.Body.String(), tt.status, tt.says)
			}
			if w.Header().Get("Content-Security-Policy") == "" || w.Header().Get("X-Frame-Options") != "DENY" {
				t.Errorf("security headers missing: %v", w.Header())
			}
		})
	}
	// localhost:PORT is this Center too.
	if w := do("GET", "/api/agents/1/kill", map[string]string{"Host": "localhost:" + u.Port()}); w.Code != 404 {
		t.Errorf("localhost:PORT: %d", w.Code)
	}
	if w := do("GET", "/assets/center.js", nil); w.Code != 200 || !strings.Contains(w.Body.String(), "textContent") {
		t.Errorf("assets: %d", w.Code)
	}
	// Logging out ends the session.
	if w := do("POST", "/logout", map[string]string{"Cookie": cookie, "Origin": origin, "X-CSRF-Token": s.csrf}); w.Code != 200 {
		t.Fatalf("logout: %d %s", w.Code, w.Body)
	}
	if w := do("GET", "/api/agents", map[string]string{"Cookie": cookie}); w.Code != 401 {
		t.Errorf("after logout: %d", w.Code)
	}
}

// TestAssetsSelfContained: nothing the pages load comes from elsewhere.
func TestAssetsSelfContained(t *testing.T) {
	for _, dir := range []string{"assets", "templates"} {
		ents, err := assetFS.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			b, _ := assetFS.ReadFile(dir + "/" + e.Name())
			s := strings.ReplaceAll(string(b), "http://www.w3.org/2000/svg", "") // a namespace, not a fetch
			for _, bad := range []string{"https://", "http://", "//fonts.", "@import", "innerHTML", "insertAdjacentHTML", "document.write", "eval("} {
				if strings.Contains(s, bad) {
					t.Errorf("%s/%s contains %q", dir, e.Name(), bad)
				}
			}
		}
	}
}
