package center

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/coconut-os/coconut/internal/agent"
)

// via is what the rows of the Center's actions name as their door.
const via = "center"

// csp allows only the Center's own embedded script, styles and
// connections: an escaping mistake could not run a script either.
// base-uri is 'self' for the pages' <base href="/s/PATH/">, which the
// relative links of a session resolve from.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; " +
	"manifest-src 'self'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"

// ServeHTTP checks what every request must satisfy before any handler
// runs: the Host header names this Center (a rebound DNS name does not),
// and the query string is bounded.
func (c *Center) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	if !c.hosts[r.Host] {
		c.fail(w, r, errorf(http.StatusMisdirectedRequest, "Host %q is not this Center's address (DNS rebinding is refused): use %s", clip(r.Host), c.base))
		return
	}
	if len(r.URL.RawQuery) > maxQueryBytes {
		c.fail(w, r, errorf(http.StatusRequestURITooLong, "query string is %d bytes; at most %d", len(r.URL.RawQuery), maxQueryBytes))
		return
	}
	c.mux.ServeHTTP(w, underSession(r))
}

// sessionPrefix starts the paths of a session's pages: /s/PATH/...
const sessionPrefix = "/s/"

type pathKey struct{}

// underSession takes a session's path prefix, /s/PATH, off the request
// and keeps PATH in its context, so that the routes are the same inside
// every session and authed can require the cookie's session to be the
// one the path names. A path of another shape is left alone (and is no
// page, or no session's).
func underSession(r *http.Request) *http.Request {
	rest, ok := strings.CutPrefix(r.URL.Path, sessionPrefix)
	if !ok {
		return r
	}
	sp, rest, ok := strings.Cut(rest, "/")
	if !ok || !validSecret(sp) {
		return r
	}
	r2 := r.WithContext(context.WithValue(r.Context(), pathKey{}, sp))
	u := *r.URL
	u.Path = "/" + rest
	if raw, ok := strings.CutPrefix(u.RawPath, sessionPrefix+sp); ok {
		u.RawPath = raw
	} else {
		u.RawPath = "" // none, or the prefix escaped: Path alone says it
	}
	r2.URL = &u
	return r2
}

// sessionPath is the /s/PATH prefix of a request ("" for none).
func sessionPath(r *http.Request) string {
	sp, _ := r.Context().Value(pathKey{}).(string)
	return sp
}

// base is where a session's pages live: relative links resolve from it.
func base(sp string) string { return sessionPrefix + sp + "/" }

// view is a request with its session: who is asking, as the agent
// registry knows callers.
type view struct {
	sess   session
	caller agent.Caller
	cookie string
	base   string // /s/PATH/, where the session's pages live
}

type ctxKey struct{}

// maxCookiesTried bounds the coconut_center cookies one request may
// present (a page on another port can set more under /s/; they are not
// this session's).
const maxCookiesTried = 8

// authed wraps a handler that needs a session: a request under a
// session's path prefix carrying that session's cookie. Without one, or
// with a cookie that is not valid here, or outside the cookie's session
// path, it answers 401 and no data.
func (c *Center) authed(h func(http.ResponseWriter, *http.Request, *view) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sp := sessionPath(r)
		if sp == "" {
			c.fail(w, r, errorf(http.StatusUnauthorized, "%v", ErrNoSessionPath))
			return
		}
		var (
			s     session
			value string
			err   = ErrNoSession
			tried int
		)
		for _, ck := range r.CookiesNamed(cookieName) {
			if tried++; tried > maxCookiesTried {
				break
			}
			if s, err = c.auth.lookup(ck.Value, sp); err == nil {
				value = ck.Value
				break
			}
		}
		if err != nil {
			c.fail(w, r, errorf(http.StatusUnauthorized, "%v", err))
			return
		}
		v := &view{sess: s, caller: agent.Caller{UID: s.uid, Via: via}, cookie: value, base: base(sp)}
		r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, v))
		w.Header().Set("Cache-Control", "no-store")
		if err := h(w, r, v); err != nil {
			c.fail(w, r, err)
		}
	}
}

// mutating wraps an action: a session, then a same-origin Origin header
// and the session's CSRF token. Nothing is acted on otherwise.
func (c *Center) mutating(h func(http.ResponseWriter, *http.Request, *view) error) http.HandlerFunc {
	return c.authed(func(w http.ResponseWriter, r *http.Request, v *view) error {
		if err := c.checkOrigin(r); err != nil {
			return err
		}
		if !v.sess.csrfOK(r.Header.Get("X-CSRF-Token")) {
			return errorf(http.StatusForbidden, "missing or wrong CSRF token: reload the page")
		}
		return h(w, r, v)
	})
}

// checkOrigin requires the Origin a browser sends with every POST to be
// this Center itself.
func (c *Center) checkOrigin(r *http.Request) error {
	o := r.Header.Get("Origin")
	switch {
	case o == "":
		return errorf(http.StatusForbidden, "no Origin header: actions come only from the Center's own pages")
	case o == "null" || len(o) < 8 || o[:7] != "http://" || !c.hosts[o[7:]]:
		return errorf(http.StatusForbidden, "Origin %q is not this Center: the action was refused", clip(o))
	}
	if s := r.Header.Get("Sec-Fetch-Site"); s != "" && s != "same-origin" {
		return errorf(http.StatusForbidden, "Sec-Fetch-Site %q: actions come only from the Center's own pages", clip(s))
	}
	return nil
}

// errorJSON is the body of a refused /api/ call.
type errorJSON struct {
	Error  string `json:"error"`
	Status int    `json:"status"`
}

// fail answers err: JSON for /api/ calls, a page for the rest. A 5xx is
// logged; its message still says what failed.
func (c *Center) fail(w http.ResponseWriter, r *http.Request, err error) {
	st := statusOf(err)
	if st >= 500 {
		c.log.Error("center request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	var he *httpError
	msg := err.Error()
	if !errors.As(err, &he) && st >= 500 {
		msg = "internal error: " + msg
	}
	if len(r.URL.Path) >= 5 && r.URL.Path[:5] == "/api/" {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(st)
		json.NewEncoder(w).Encode(errorJSON{Error: msg, Status: st})
		return
	}
	c.errorPage(w, r, st, msg)
}

// reply writes v as JSON.
func reply(w http.ResponseWriter, v any) error {
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(v)
}
