package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// centerClient is a cookie-holding HTTP client of one Center session.
type centerClient struct {
	t      *testing.T
	origin string // http://127.0.0.1:PORT
	pre    string // the session's path prefix, /s/PATH, that req puts before a path
	cookie string // name=value
	csrf   string
	landed string // where the login sent the browser
}

// login redeems a link outside a browser, as the tests of bad input need
// the raw answers.
func centerLogin(t *testing.T, link string) *centerClient {
	t.Helper()
	u, _ := url.Parse(link)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || len(resp.Cookies()) != 1 {
		t.Fatalf("login: %s %v", resp.Status, resp.Header)
	}
	ck := resp.Cookies()[0]
	// The login lands under the session's own path, where its cookie is
	// scoped: /s/PATH/ and the page.
	loc := resp.Header.Get("Location")
	parts := strings.SplitN(loc, "/", 4)
	if len(parts) != 4 || parts[0] != "" || parts[1] != "s" || len(parts[2]) != 43 || ck.Path != "/s/"+parts[2]+"/" {
		t.Fatalf("login went to %q with a cookie for %q", loc, ck.Path)
	}
	c := &centerClient{t: t, origin: "http://" + u.Host, pre: "/s/" + parts[2], cookie: ck.Name + "=" + ck.Value, landed: loc}
	_, body := c.req("GET", "/", nil, nil)
	i := strings.Index(body, `name="csrf-token" content="`)
	if i < 0 {
		t.Fatalf("no CSRF token in the page")
	}
	c.csrf = body[i+len(`name="csrf-token" content="`):]
	c.csrf = c.csrf[:strings.IndexByte(c.csrf, '"')]
	return c
}

// req sends one request; hdr may override Host, Cookie, Origin and the CSRF
// header ("" removes one).
func (c *centerClient) req(method, path string, body []byte, hdr map[string]string) (int, string) {
	c.t.Helper()
	r, err := http.NewRequest(method, c.origin+c.pre+path, bytes.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	r.Header.Set("Cookie", c.cookie)
	if method == "POST" {
		r.Header.Set("Origin", c.origin)
		r.Header.Set("X-CSRF-Token", c.csrf)
	}
	for k, v := range hdr {
		switch {
		case k == "Host":
			r.Host = v
		case v == "":
			r.Header.Del(k)
		default:
			r.Header.Set(k, v)
		}
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(r)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestCenterBadInput: each refusal is its precise 4xx with no data and
// nothing acted on, and the daemon keeps serving; the login endpoint is the
// caller's uid's; a non-loopback address stops the daemon.
func TestCenterBadInput(t *testing.T) {
	// The Center's address from coconut.toml's [center] table this time,
	// and a price that makes the top bar show a cost.
	cfg := filepath.Join(t.TempDir(), "coconut.toml")
	if err := os.WriteFile(cfg, []byte("[center]\naddr = \"127.0.0.1:0\"\n[broker]\nprice_per_1k_tokens = 0.5\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e := newEnvArgs(t, "--config", cfg)
	uid, _ := e.demo()
	cred := &syscall.Credential{Uid: uid, Gid: uid}
	rootAgent := mustAID(t, e.must("agent", "run", "--name", "roots-sleeper", "--workdir", "/", "--", "/bin/sleep", "600"))
	o, errs, code := e.cliAs(cred, "agent", "run", "--name", "demo-sleeper", "--workdir", "/", "--", "/bin/sleep", "600")
	if code != 0 {
		t.Fatalf("demo agent: %s", errs)
	}
	demoAgent := mustAID(t, o)
	e.waitState(rootAgent, "Active")
	e.waitState(demoAgent, "Active")
	rootRow := e.rows("--aid", strconv.FormatUint(rootAgent, 10))[0].Seq
	demoRow := e.rows("--aid", strconv.FormatUint(demoAgent, 10))[0].Seq

	root := centerLogin(t, e.loginLink(""))
	var sum struct {
		Active int      `json:"active"`
		Cost   *float64 `json:"cost"`
		Price  float64  `json:"price_per_1k_tokens"`
	}
	if st, body := root.req("GET", "/api/summary", nil, nil); st != 200 || json.Unmarshal([]byte(body), &sum) != nil || sum.Cost == nil || sum.Price != 0.5 || sum.Active < 1 {
		t.Errorf("summary: %d %s", st, body)
	}
	// Paging back through the chain: root sees every row, so pages of the
	// unfiltered feed are runs of consecutive seqs, newest first.
	type page struct {
		Rows []struct {
			Seq uint64 `json:"seq"`
		} `json:"rows"`
		Older uint64 `json:"older"`
	}
	var p1, p2 page
	if st, body := root.req("GET", "/api/audit?limit=5", nil, nil); st != 200 || json.Unmarshal([]byte(body), &p1) != nil || len(p1.Rows) != 5 {
		t.Fatalf("first page: %d %s", st, body)
	}
	if st, body := root.req("GET", fmt.Sprintf("/api/audit?limit=5&before=%d", p1.Older), nil, nil); st != 200 || json.Unmarshal([]byte(body), &p2) != nil || len(p2.Rows) == 0 {
		t.Fatalf("second page: %d %s", st, body)
	}
	if len(p2.Rows) < 5 && (p2.Older != 0 || p2.Rows[len(p2.Rows)-1].Seq != 1) {
		t.Errorf("a short page must be the chain's start: %+v", p2)
	}
	all := append(p1.Rows, p2.Rows...)
	for i := 1; i < len(all); i++ {
		if all[i].Seq != all[i-1].Seq-1 {
			t.Fatalf("pages are not consecutive, newest first: %v", all)
		}
	}
	if p1.Older != p1.Rows[4].Seq {
		t.Errorf("older cursor %d, last row %d", p1.Older, p1.Rows[4].Seq)
	}

	// Links: forged, malformed, reused: 401, no cookie.
	link := e.loginLink("")
	u, _ := url.Parse(link)
	get := func(target string) (int, string, []*http.Cookie) {
		resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Get(target)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Cookies()
	}
	forged := "http://" + u.Host + "/login?token=" + strings.Repeat("A", len(u.Query().Get("token")))
	for name, target := range map[string]string{"forged": forged, "malformed": "http://" + u.Host + "/login?token=%3Cscript%3E"} {
		if st, body, cks := get(target); st != 401 || len(cks) != 0 || !strings.Contains(body, "coconut center") {
			t.Errorf("%s link: %d %v %s", name, st, cks, body)
		}
	}
	if st, _, _ := get(link); st != 303 {
		t.Fatalf("first use of the link: %d", st)
	}
	if st, body, cks := get(link); st != 401 || len(cks) != 0 || !strings.Contains(body, "already used") {
		t.Errorf("reused link: %d %s", st, body)
	}

	// The demo user's session sees its own agent's rows, not root's.
	demoOut, demoErr, code := e.cliAs(cred, "center", "--no-open", "--next", fmt.Sprintf("/review/%d", demoRow))
	if code != 0 {
		t.Fatalf("coconut center as the demo user: %s", demoErr)
	}
	demo := centerLogin(t, strings.TrimSpace(demoOut))
	if st, body := demo.req("GET", fmt.Sprintf("/review/%d", demoRow), nil, nil); st != 200 || !strings.Contains(body, "demo-sleeper") {
		t.Errorf("own row: %d", st)
	}
	if st, body := demo.req("GET", fmt.Sprintf("/review/%d", rootRow), nil, nil); st != 404 || strings.Contains(body, "roots-sleeper") {
		t.Errorf("another user's row: %d %s", st, body)
	}
	if st, body := demo.req("GET", "/api/agents", nil, nil); st != 200 || strings.Contains(body, "roots-sleeper") || !strings.Contains(body, "demo-sleeper") {
		t.Errorf("demo's agents: %d %s", st, body)
	}
	if st, _ := demo.req("GET", fmt.Sprintf("/agents/%d", rootAgent), nil, nil); st != 404 {
		t.Errorf("another user's agent page: %d", st)
	}
	if st, _ := demo.req("GET", fmt.Sprintf("/api/audit?aid=%d", rootAgent), nil, nil); st != 404 {
		t.Errorf("another user's rows by aid: %d", st)
	}
	if st, _ := demo.req("POST", fmt.Sprintf("/api/agents/%d/kill", rootAgent), nil, nil); st != 404 {
		t.Errorf("kill another user's agent: %d", st)
	}

	// The demo session's cookie edited to claim uid 0.
	name, val, _ := strings.Cut(demo.cookie, "=")
	_, secret, _ := strings.Cut(val, ".")
	forgedRoot := &centerClient{t: t, origin: demo.origin, pre: demo.pre, cookie: name + "=0." + secret, csrf: demo.csrf}
	for _, p := range []string{"/", "/api/agents", fmt.Sprintf("/review/%d", rootRow)} {
		if st, body := forgedRoot.req("GET", p, nil, nil); st != 401 || strings.Contains(body, "roots-sleeper") {
			t.Errorf("another uid's cookie on %s: %d", p, st)
		}
	}
	if st, _ := forgedRoot.req("POST", fmt.Sprintf("/api/agents/%d/kill", rootAgent), nil, nil); st != 401 {
		t.Errorf("another uid's cookie, POST: %d", st)
	}

	// Root's cookie replayed from outside a browser (as a server on
	// another port would, were it sent the cookie) without the session's
	// path, or under another session's: 401, no data, nothing acted on,
	// however right its Origin and CSRF token.
	for _, pre := range []string{"", demo.pre, "/s/" + strings.Repeat("A", 43)} {
		stolen := &centerClient{t: t, origin: root.origin, pre: pre, cookie: root.cookie, csrf: root.csrf}
		for _, p := range []string{"/", "/audit", "/api/agents", "/api/audit", "/api/summary", "/api/stream", fmt.Sprintf("/review/%d", rootRow), fmt.Sprintf("/agents/%d", rootAgent)} {
			if st, body := stolen.req("GET", p, nil, nil); st != 401 || strings.Contains(body, "roots-sleeper") || strings.Contains(body, root.csrf) {
				t.Errorf("root's cookie at %q%s: %d %.200s", pre, p, st, body)
			}
		}
		if st, _ := stolen.req("POST", fmt.Sprintf("/api/agents/%d/quarantine", rootAgent), nil, nil); st != 401 {
			t.Errorf("root's cookie at %q, POST quarantine: %d", pre, st)
		}
	}

	kill := fmt.Sprintf("/api/agents/%d/quarantine", rootAgent)
	tests := []struct {
		name   string
		method string
		path   string
		hdr    map[string]string
		status int
	}{
		{"POST without CSRF", "POST", kill, map[string]string{"X-CSRF-Token": ""}, 403},
		{"POST with another session's CSRF", "POST", kill, map[string]string{"X-CSRF-Token": demo.csrf}, 403},
		{"POST foreign Origin", "POST", kill, map[string]string{"Origin": "http://evil.example"}, 403},
		{"POST without Origin", "POST", kill, map[string]string{"Origin": ""}, 403},
		{"rebinding Host", "GET", "/api/agents", map[string]string{"Host": "rebind.evil.example:" + u.Port()}, 421},
		{"rebinding Host, POST", "POST", kill, map[string]string{"Host": "rebind.evil.example:" + u.Port()}, 421},
		{"unknown SEQ", "GET", "/review/99999999", nil, 404},
		{"SEQ not a number", "GET", "/review/1e3", nil, 400},
		{"proof of unknown SEQ", "GET", "/api/proof/99999999", nil, 404},
		{"unknown AID", "GET", "/agents/99999", nil, 404},
		{"bad filter", "GET", "/audit?result=maybe", nil, 400},
		{"long query", "GET", "/audit?type=" + strings.Repeat("a", 5000), nil, 414},
		{"no cookie", "GET", "/api/agents", map[string]string{"Cookie": ""}, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, body := root.req(tt.method, tt.path, nil, tt.hdr)
			if st != tt.status || strings.Contains(body, "roots-sleeper") && st >= 400 {
				t.Fatalf("%d %s, want %d", st, body, tt.status)
			}
		})
	}
	if a := e.agent(rootAgent); a.State != "Active" {
		t.Fatalf("a refused POST acted: agent is %s", a.State)
	}

	// A 10 MB query string: refused by the HTTP server itself, and the
	// daemon serves on.
	huge := "/audit?type=" + strings.Repeat("a", 10<<20)
	st, _ := root.req("GET", huge, nil, nil)
	if st != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("10 MB query string: %d", st)
	}
	if st, body := root.req("GET", "/api/agents", nil, nil); st != 200 || !strings.Contains(body, "roots-sleeper") {
		t.Errorf("after the bad input the Center answers %d", st)
	}
	e.must("doctor")

	// The action itself, once right, goes through and names the Center.
	if st, body := root.req("POST", kill, nil, nil); st != 200 {
		t.Fatalf("quarantine: %d %s", st, body)
	}
	rows := e.rows("--aid", strconv.FormatUint(rootAgent, 10), "--type", "agent.state")
	if r := rows[len(rows)-1]; r.Object != "Quarantined" || r.Detail["via"] != "center" {
		t.Errorf("row: %+v", r)
	}

	// The login endpoint: JSON with the link, refused to agents, and a
	// next that is not a Center page is a 400.
	var l struct {
		URL       string `json:"url"`
		ExpiresIn int    `json:"expires_in"`
	}
	if err := json.Unmarshal([]byte(e.must("center", "--json", "--no-open")), &l); err != nil || !strings.HasPrefix(l.URL, root.origin+"/login?token=") || l.ExpiresIn != 60 {
		t.Errorf("center --json: %+v %v", l, err)
	}
	if st, body := e.raw("POST", "/v1/center/login", []byte(`{"next":"//evil.example"}`), nil); st != 400 {
		t.Errorf("next off the Center: %d %s", st, body)
	}
	if st, _ := e.raw("POST", "/v1/center/login", []byte(`{"nxt":"/"}`), nil); st != 400 {
		t.Errorf("unknown field: %d", st)
	}
	if _, errs, code := e.cli("center", "--next", "http://evil.example/"); code != 1 || !strings.Contains(errs, "Center's pages") {
		t.Errorf("coconut center --next off the Center: %d %s", code, errs)
	}
}

// TestCenterLoopbackOnly: coconutd refuses a Center address other hosts
// could reach, and says so.
func TestCenterLoopbackOnly(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", "[::]:0", "192.0.2.1:7880"} {
		dir := t.TempDir()
		out, err := exec.Command(filepath.Join(bins, "coconutd"), "--state-dir", filepath.Join(dir, "s"), "--socket", filepath.Join(dir, "sock"),
			"--config", "/dev/null", "--center-addr", addr).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "loopback") {
			t.Errorf("--center-addr %s: %v %s", addr, err, out)
		}
		os.RemoveAll(dir)
	}
}
