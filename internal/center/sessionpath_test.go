package center

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// TestCookieScopedToSessionPath: browsers scope cookies by host and path,
// never by port, so a server on another loopback port is sent every
// cookie whose path matches. The session cookie's path is the session's
// own secret prefix: a cookie jar with RFC 6265's rules (as a browser's)
// sends it to no other path on any port, and the cookie replayed without
// that path, from outside a browser, opens nothing.
func TestCookieScopedToSessionPath(t *testing.T) {
	c, err := Listen(Config{Addr: "127.0.0.1:0", Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer c.ln.Close()
	link, err := c.LoginLink(1000, "/review/3")
	if err != nil {
		t.Fatal(err)
	}
	lu, _ := url.Parse(link)
	r := httptest.NewRequest("GET", lu.RequestURI(), nil)
	r.Host = c.Addr()
	w := httptest.NewRecorder()
	c.ServeHTTP(w, r)
	loc := w.Header().Get("Location")
	sp, _ := strings.CutSuffix(strings.TrimPrefix(loc, sessionPrefix), "/review/3")
	if w.Code != http.StatusSeeOther || !validSecret(sp) {
		t.Fatalf("login: %d %q", w.Code, loc)
	}

	jar, _ := cookiejar.New(nil)
	jar.SetCookies(lu, w.Result().Cookies())
	sent := func(target string) bool {
		u, err := url.Parse(target)
		if err != nil {
			t.Fatal(err)
		}
		for _, ck := range jar.Cookies(u) {
			if ck.Name == cookieName {
				return true
			}
		}
		return false
	}
	center := "http://" + c.Addr()
	other := "http://127.0.0.1:3000" // an agent's server on another port
	if !sent(center+loc) || !sent(center+base(sp)+"api/stream") {
		t.Fatal("the session's own pages are not sent its cookie")
	}
	// The path is what keeps it: under it, another port is sent the
	// cookie too (which is why the path is never given away).
	if !sent(other + base(sp)) {
		t.Fatal("the jar scopes cookies by port: this test no longer shows what it should")
	}
	for _, target := range []string{other + "/", other + "/login", other + "/review/3", other + "/s/", other + "/s/" + secret() + "/",
		other + "/s/" + sp, other + "/s/" + sp + "x/", center + "/", center + "/api/agents", center + "/s/" + secret() + "/api/agents"} {
		if sent(target) {
			t.Errorf("the session cookie is sent to %s", target)
		}
	}

	// What a server on another port would have to replay, had it the
	// cookie: without the session's path, a 401 and no data, for every
	// page and action, whatever Origin and CSRF token it adds.
	ck := w.Result().Cookies()[0]
	s, err := c.auth.lookup(ck.Value, sp)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ method, target string }{
		{"GET", "/"}, {"GET", "/audit"}, {"GET", "/review/3"}, {"GET", "/api/agents"}, {"GET", "/api/audit"},
		{"GET", "/api/stream"}, {"GET", "/api/summary"}, {"POST", "/api/agents/1/release"}, {"POST", "/api/agents/1/kill"},
		{"GET", "/s/" + secret() + "/api/agents"}, {"POST", "/s/" + secret() + "/api/agents/1/grant"},
	} {
		r := httptest.NewRequest(tt.method, tt.target, strings.NewReader(`{"caps":["net.bind:127.0.0.1:1"]}`))
		r.Host = c.Addr()
		r.Header.Set("Cookie", ck.Name+"="+ck.Value)
		r.Header.Set("Origin", center)
		r.Header.Set("X-CSRF-Token", s.csrf)
		w := httptest.NewRecorder()
		c.ServeHTTP(w, r) // this Center has no services: a request that got through would crash the test
		if w.Code != http.StatusUnauthorized || strings.Contains(w.Body.String(), s.csrf) {
			t.Errorf("replayed cookie, %s %s: %d %s", tt.method, tt.target, w.Code, w.Body)
		}
	}
}

// FuzzUnderSession: taking a session's prefix off a path never crashes,
// and what it takes is exactly /s/ + a well-formed path secret, leaving a
// path that starts with "/"; every other path is left alone.
func FuzzUnderSession(f *testing.F) {
	sp := secret()
	for _, s := range []string{"/", "/s/", "/s/" + sp, "/s/" + sp + "/", "/s/" + sp + "/review/3", "/s/x/api/agents", "/s//", "/s/" + sp + "//x", "s/" + sp + "/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		r := &http.Request{URL: &url.URL{Path: p}}
		r = r.WithContext(t.Context())
		got := underSession(r)
		prefix := sessionPath(got)
		if prefix == "" {
			if got.URL.Path != p {
				t.Fatalf("%q became %q without a session path", p, got.URL.Path)
			}
			return
		}
		if !validSecret(prefix) || !strings.HasPrefix(got.URL.Path, "/") || sessionPrefix+prefix+got.URL.Path != p || r.URL.Path != p {
			t.Fatalf("%q: session path %q, rest %q", p, prefix, got.URL.Path)
		}
	})
}
