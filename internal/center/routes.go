package center

import (
	"io/fs"
	"net/http"
	"strings"
	"time"
)

func (c *Center) routes() {
	sub, _ := fs.Sub(assetFS, "assets")
	static := http.StripPrefix("/assets/", http.FileServerFS(sub))
	c.mux.Handle("GET /assets/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		static.ServeHTTP(w, r)
	}))
	c.mux.HandleFunc("GET /tiles/", c.serveTiles)
	c.mux.HandleFunc("GET /login", c.login)
	c.mux.HandleFunc("POST /logout", c.mutating(c.logout))

	c.mux.HandleFunc("GET /{$}", c.authed(c.agentsPage))
	c.mux.HandleFunc("GET /agents/{aid}", c.authed(c.agentPage))
	c.mux.HandleFunc("GET /audit", c.authed(c.auditPage))
	c.mux.HandleFunc("GET /review/{seq}", c.authed(c.reviewPage))
	c.mux.HandleFunc("GET /plots", c.authed(c.plotsPage))

	c.mux.HandleFunc("GET /api/summary", c.authed(c.apiSummary))
	c.mux.HandleFunc("GET /api/agents", c.authed(c.apiAgents))
	c.mux.HandleFunc("GET /api/audit", c.authed(c.apiAudit))
	c.mux.HandleFunc("GET /api/series", c.authed(c.apiSeries))
	c.mux.HandleFunc("GET /api/proof/{seq}", c.authed(c.apiProof))
	c.mux.HandleFunc("GET /api/stream", c.authed(c.stream))
	c.mux.HandleFunc("POST /api/agents/{aid}/{action}", c.mutating(c.act))

	c.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		c.fail(w, r, errorf(http.StatusNotFound, "no such page: %s %s", r.Method, clip(r.URL.Path)))
	})
}

// login redeems a login link: a session cookie for the link's uid, then
// on to the page the link names. A link works once, for 60 seconds.
func (c *Center) login(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	tok := q.Get("token")
	if tok == "" || len(q) != 1 || len(q["token"]) != 1 {
		c.fail(w, r, errorf(http.StatusUnauthorized, "a login link carries exactly one token: run `coconut center`"))
		return
	}
	cookie, sp, next, err := c.auth.redeem(tok)
	if err != nil {
		c.fail(w, r, errorf(http.StatusUnauthorized, "%v", err))
		return
	}
	// The cookie is scoped to the session's own path: a browser sends it
	// to any port of this host, but only under /s/PATH/, which no other
	// server learns.
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: cookie, Path: base(sp), HttpOnly: true,
		SameSite: http.SameSiteStrictMode, MaxAge: int(SessionIdle / time.Second)})
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, base(sp)+strings.TrimPrefix(next, "/"), http.StatusSeeOther)
}

func (c *Center) logout(w http.ResponseWriter, r *http.Request, v *view) error {
	c.auth.logout(v.cookie)
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: v.base, HttpOnly: true, SameSite: http.SameSiteStrictMode, MaxAge: -1})
	return reply(w, map[string]bool{"logged_out": true})
}
