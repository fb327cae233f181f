package center

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/coconut-os/coconut/internal/agent"
)

// via is what the rows of the Center's actions name as their door.
const via = "center"

// csp allows only the Center's own embedded script, styles and
// connections: an escaping mistake could not run a script either.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; " +
	"manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

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
	c.mux.ServeHTTP(w, r)
}

// view is a request with its session: who is asking, as the agent
// registry knows callers.
type view struct {
	sess   session
	caller agent.Caller
	cookie string
}

type ctxKey struct{}

// authed wraps a handler that needs a session. Without one, or with a
// cookie that is not valid here, it answers 401 and no data.
func (c *Center) authed(h func(http.ResponseWriter, *http.Request, *view) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ck, err := r.Cookie(cookieName)
		if err != nil {
			c.fail(w, r, errorf(http.StatusUnauthorized, "%v", ErrNoSession))
			return
		}
		s, err := c.auth.lookup(ck.Value)
		if err != nil {
			c.fail(w, r, errorf(http.StatusUnauthorized, "%v", err))
			return
		}
		v := &view{sess: s, caller: agent.Caller{UID: s.uid, Via: via}, cookie: ck.Value}
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
