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
	loc := w.Header().Get("Location")
	sp, _ := strings.CutSuffix(strings.TrimPrefix(loc, sessionPrefix), "/audit")
	if w.Code != http.StatusSeeOther || !validSecret(sp) || loc != base(sp)+"audit" {
		t.Fatalf("login: %d %v", w.Code, w.Header())
	}
	cks := w.Result().Cookies()
	if len(cks) != 1 {
		t.Fatalf("login set %d cookies", len(cks))
	}
	ck := cks[0]
	if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != base(sp) || strings.Contains(ck.Value, sp) {
		t.Fatalf("cookie %+v", ck)
	}
	cookie := ck.Name + "=" + ck.Value
	s, _ := c.auth.lookup(ck.Value, sp)
	origin := "http://" + host
	_, sid, _ := strings.Cut(ck.Value, ".")
	pre := strings.TrimSuffix(base(sp), "/") // a session's pages: pre + "/audit"
	act := map[string]string{"Cookie": cookie, "Origin": origin, "X-CSRF-Token": s.csrf}

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
		{"no cookie", "GET", pre + "/api/agents", nil, 401, "not logged in"},
		{"no cookie page", "GET", pre + "/review/1", nil, 401, "coconut center"},
		{"another uid's cookie", "GET", pre + "/api/agents", map[string]string{"Cookie": ck.Name + "=0." + sid}, 401, "not valid here"},
		{"forged cookie", "GET", pre + "/", map[string]string{"Cookie": ck.Name + "=1000." + secret()}, 401, "not valid here"},
		// The cookie without its session's path opens nothing: not at the
		// root, not under another path of the same shape, not posting.
		{"cookie at the root", "GET", "/", map[string]string{"Cookie": cookie}, 401, "not logged in here"},
		{"cookie at the root api", "GET", "/api/agents", map[string]string{"Cookie": cookie}, 401, "not logged in here"},
		{"cookie at the root review", "GET", "/review/1", map[string]string{"Cookie": cookie}, 401, "not logged in here"},
		{"cookie at the root stream", "GET", "/api/stream", map[string]string{"Cookie": cookie}, 401, "not logged in here"},
		{"cookie at the root, POST", "POST", "/api/agents/1/kill", act, 401, "not logged in here"},
		{"cookie at the root, logout", "POST", "/logout", act, 401, "not logged in here"},
		{"cookie at another path", "GET", "/s/" + secret() + "/api/agents", map[string]string{"Cookie": cookie}, 401, "not valid here"},
		{"cookie at another path, POST", "POST", "/s/" + secret() + "/api/agents/1/kill", act, 401, "not valid here"},
		{"cookie at a malformed path", "GET", "/s/" + sp[:20] + "/api/agents", map[string]string{"Cookie": cookie}, 404, "no such page"},
		{"path without its slash", "GET", pre, map[string]string{"Cookie": cookie}, 404, "no such page"},
		{"rebinding host", "GET", pre + "/api/agents", map[string]string{"Cookie": cookie, "Host": "evil.example:" + u.Port()}, 421, "DNS rebinding"},
		{"no host port", "GET", pre + "/", map[string]string{"Cookie": cookie, "Host": "localhost"}, 421, "not this Center"},
		{"long query", "GET", pre + "/audit?type=" + strings.Repeat("a", maxQueryBytes+1), map[string]string{"Cookie": cookie}, 414, "at most"},
		{"post no origin", "POST", pre + "/api/agents/1/kill", map[string]string{"Cookie": cookie, "X-CSRF-Token": s.csrf}, 403, "no Origin"},
		{"post foreign origin", "POST", pre + "/api/agents/1/kill", map[string]string{"Cookie": cookie, "X-CSRF-Token": s.csrf, "Origin": "http://evil.example"}, 403, "not this Center"},
		{"post null origin", "POST", pre + "/api/agents/1/kill", map[string]string{"Cookie": cookie, "X-CSRF-Token": s.csrf, "Origin": "null"}, 403, "not this Center"},
		{"post cross-site", "POST", pre + "/api/agents/1/kill", map[string]string{"Cookie": cookie, "X-CSRF-Token": s.csrf, "Origin": origin, "Sec-Fetch-Site": "cross-site"}, 403, "Sec-Fetch-Site"},
		{"post no csrf", "POST", pre + "/api/agents/1/kill", map[string]string{"Cookie": cookie, "Origin": origin}, 403, "CSRF"},
		{"post wrong csrf", "POST", pre + "/api/agents/1/kill", map[string]string{"Cookie": cookie, "Origin": origin, "X-CSRF-Token": secret()}, 403, "CSRF"},
		{"post without session", "POST", pre + "/api/agents/1/kill", map[string]string{"Origin": origin, "X-CSRF-Token": s.csrf}, 401, "not logged in"},
		{"bad aid", "POST", pre + "/api/agents/x/kill", act, 400, "positive number"},
		{"bad action", "POST", pre + "/api/agents/1/explode", act, 404, "no action"},
		{"get an action", "GET", pre + "/api/agents/1/kill", map[string]string{"Cookie": cookie}, 404, "no such page"},
		{"unknown page", "GET", pre + "/etc/passwd", map[string]string{"Cookie": cookie}, 404, "no such page"},
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
	if w := do("GET", pre+"/api/agents/1/kill", map[string]string{"Host": "localhost:" + u.Port()}); w.Code != 404 {
		t.Errorf("localhost:PORT: %d", w.Code)
	}
	if w := do("GET", "/assets/center.js", nil); w.Code != 200 || !strings.Contains(w.Body.String(), "textContent") {
		t.Errorf("assets: %d", w.Code)
	}
	// A page on another port may set more cookies of the same name under
	// /s/ (cookies are not scoped by port either): the session's own is
	// still found among them.
	tossed := ck.Name + "=0." + secret() + "; " + ck.Name + "=1000." + secret() + "; " + cookie
	if w := do("GET", pre+"/api/agents/1/kill", map[string]string{"Cookie": tossed}); w.Code != 404 {
		t.Errorf("the session's cookie after tossed ones: %d %s", w.Code, w.Body)
	}
	// Logging out ends the session and expires the cookie at its path.
	w = do("POST", pre+"/logout", act)
	if w.Code != 200 || len(w.Result().Cookies()) != 1 || w.Result().Cookies()[0].Path != base(sp) || w.Result().Cookies()[0].MaxAge >= 0 {
		t.Fatalf("logout: %d %s %v", w.Code, w.Body, w.Result().Cookies())
	}
	if w := do("GET", pre+"/api/agents", map[string]string{"Cookie": cookie}); w.Code != 401 {
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
