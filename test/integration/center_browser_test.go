package integration

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// xssNames are file names an agent creates and then tries to read: every
// place the Center shows them must show the characters, never markup.
// (A file name cannot hold "/", so no closing tags.)
var xssNames = []string{"<img src=x onerror=alert(1)>", "<b onmouseover=alert(2)>bold", `"><svg onload=alert(3)>`, "<script>alert(4)"}

// chromium finds Debian's chromium (.ci/run installs it).
func chromium(t testing.TB) string {
	t.Helper()
	for _, p := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	t.Fatal("no chromium: apt-get install chromium (.ci/run does)")
	return ""
}

// browser is one headless Chromium tab; dialogs counts JavaScript dialogs
// (an alert() that ran would be one).
type browser struct {
	ctx     context.Context
	dialogs atomic.Int32
	t       testing.TB
	shots   string
}

func newBrowser(t testing.TB, width, height int) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium(t)), chromedp.NoSandbox,
		chromedp.WindowSize(width, height), chromedp.Flag("disable-gpu", true))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	b := &browser{t: t}
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithListener(func(ev any) {
		if d, ok := ev.(*page.EventJavascriptDialogOpening); ok {
			b.dialogs.Add(1)
			t.Errorf("a JavaScript dialog opened: %q", d.Message)
		}
	}))
	b.ctx = ctx
	t.Cleanup(func() { cancel(); cancelA() })
	// Start the browser on this context: the first run's context owns it,
	// and the timeouts of later steps must not end it.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	if tt, ok := t.(*testing.T); ok {
		b.shots = tt.ArtifactDir()
	} else {
		b.shots = t.TempDir()
	}
	return b
}

func (b *browser) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("browser: %v", err)
	}
}

// eval runs JavaScript in the page.
func eval[T any](b *browser, js string) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](js))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

// wait polls a JavaScript predicate until it holds. An evaluation that
// fails (a navigation is under way) is tried again.
func (b *browser) wait(what, js string, d time.Duration) {
	b.t.Helper()
	deadline := time.Now().Add(d)
	var err error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
		var ok bool
		ok, err = chromedp.Run(ctx, chromedp.Evaluate[bool]("!!("+js+")"))
		cancel()
		if err == nil && ok {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	text, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.querySelector("main") ? document.querySelector("main").innerText.slice(0, 2000) : document.body.innerText`))
	b.t.Fatalf("waiting for %s (%v): not within %v\npage: %s", what, err, d, text)
}

// shot writes a screenshot into the test's artefacts.
func (b *browser) shot(name string) string {
	b.t.Helper()
	chromedp.Run(b.ctx, chromedp.Evaluate[bool](`window.scrollTo(0, 0), true`)) // the sticky top bar at the top
	var png []byte
	var err error
	for try := 0; try < 5; try++ { // a page between two layouts can measure 0 wide
		if png, err = chromedp.Run(b.ctx, chromedp.FullScreenshot(100)); err == nil {
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	if err != nil {
		b.t.Fatalf("screenshot: %v", err)
	}
	p := filepath.Join(b.shots, name)
	if err := os.WriteFile(p, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	if dst := os.Getenv("COCONUT_CENTER_SHOTS"); dst != "" {
		os.WriteFile(filepath.Join(dst, name), png, 0o644)
	}
	return p
}

// loginLink runs `coconut center --no-open` as root and returns the link.
func (e *env) loginLink(next string) string {
	e.t.Helper()
	args := []string{"center", "--no-open"}
	if next != "" {
		args = append(args, "--next", next)
	}
	out := strings.TrimSpace(e.must(args...))
	if !strings.HasPrefix(out, "http://127.0.0.1:") || !strings.Contains(out, "/login?token=") {
		e.t.Fatalf("coconut center printed %q", out)
	}
	return out
}

// centerTeam spawns the dream team with the nosy reviewer probing every 3
// s instead of 30 s, and returns the nosy reviewer's AID.
func centerTeam(t *testing.T, e *env) uint64 {
	e.demo()
	key := e.trustedKey("maya")
	team := dreamTeam(t)
	fast := strings.Replace(team, "--probe-ssh]", "--probe-ssh, --interval, 300ms]", 1)
	if fast == team {
		t.Fatal("the dream team's nosy reviewer no longer passes --probe-ssh last")
	}
	e.must("agent", "spawn", e.writeSigned("dream-team.yaml", fast, key))
	for _, a := range e.agents(false) {
		if a.Name == "nosy-reviewer" {
			return a.AID
		}
	}
	t.Fatal("no nosy-reviewer")
	return 0
}

// TestCenterBrowser drives the Center in real headless Chromium: login
// through `coconut center`'s link, the 31 agents, the nosy reviewer's deny
// appearing without a reload, its review page with the inclusion proof,
// Quarantine pressed and seen by the API and the chain, and file names
// that are markup shown as text.
func TestCenterBrowser(t *testing.T) {
	e := newEnvArgs(t, "--center-addr", "127.0.0.1:0")
	nosy := centerTeam(t, e)
	_, home := e.demo()
	b := newBrowser(t, 1400, 900)

	// Log in: the link lands on the agents, all 31 of them.
	b.do(chromedp.Navigate(e.loginLink("")))
	b.wait("31 agents", `document.querySelectorAll("#agents-body tr").length === 31 && document.querySelector("#live.on") !== null`, 30*time.Second)
	if n := eval[int](b, `[...document.querySelectorAll("#agents-body tr a.name")].filter(a => a.textContent === "nosy-reviewer").length`); n != 1 {
		t.Fatalf("nosy-reviewer rows: %d", n)
	}
	// It lands under the session's own path, the only path its cookie is
	// sent to.
	landed := eval[string](b, `location.pathname`)
	pre, ok := strings.CutSuffix(landed, "/")
	if !ok || !strings.HasPrefix(pre, "/s/") || len(pre) != len("/s/")+43 || strings.Contains(pre[3:], "/") {
		t.Fatalf("landed on %s", landed)
	}
	centerCookieAcrossPorts(t, b, pre)

	// An agent that names files with markup, creates them, and tries to
	// read one outside its bundle, once a second.
	dir := filepath.Join(e.dir, "xss")
	os.Mkdir(dir, 0o777)
	os.Chmod(dir, 0o777)
	outside := filepath.Join(e.dir, "outside") // files that exist, outside its bundle
	os.Mkdir(outside, 0o755)
	for _, n := range xssNames {
		if err := os.WriteFile(filepath.Join(outside, n), []byte("x\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	script := `while :; do for n in "$@"; do : > "$n"; read -r l < "` + outside + `/$n"; done 2>/dev/null; sleep 1; done`
	args := append([]string{"agent", "run", "--name", "xss-maker", "--workdir", dir, "--cap", "fs.write:" + dir + "/**", "--cap", "fs.read:" + dir + "/**",
		"--cap", "fs.exec:/usr/bin/sleep", "--cap", "fs.read:/usr/bin/sleep",
		"--", "/bin/bash", "-c", script, "xss"}, xssNames...)
	xss := mustAID(t, e.must(args...))
	b.wait("the new agent, live", `document.querySelectorAll("#agents-body tr").length === 32`, 20*time.Second)
	b.wait("the nosy reviewer's deny count, live", fmt.Sprintf(`Number(document.querySelector('#agents-body tr[data-aid="%d"] td:nth-child(9)').textContent) > 0`, nosy), 20*time.Second)
	b.wait("CPU figures from the sampler", `[...document.querySelectorAll("#agents-body tr td:nth-child(5)")].some(td => td.textContent !== "0.0%")`, 20*time.Second)
	b.shot("center-agents.png")

	// The deny feed: a deny of the nosy reviewer arrives without a reload.
	base := eval[string](b, `location.origin`) + pre
	b.do(chromedp.Navigate(fmt.Sprintf("%s/audit?aid=%d&result=deny", base, nosy)))
	b.wait("live stream", `document.querySelector("#live.on") !== null`, 10*time.Second)
	last := eval[int](b, `Math.max(0, ...[...document.querySelectorAll("tr[data-seq]")].map(r => Number(r.dataset.seq)))`)
	eval[bool](b, `window.__noReload = true`)
	b.wait("a new deny row", fmt.Sprintf(`window.__noReload === true && [...document.querySelectorAll("tr.deny[data-seq]")].some(r => Number(r.dataset.seq) > %d)`, last), 30*time.Second)
	seq := eval[int](b, `Math.max(...[...document.querySelectorAll("tr.deny[data-seq]")].map(r => Number(r.dataset.seq)))`)
	obj := eval[string](b, fmt.Sprintf(`document.querySelector('tr[data-seq="%d"] td.obj').textContent`, seq))
	if want := home + "/.ssh/id_ed25519"; obj != want {
		t.Fatalf("deny row %d object %q, want %q", seq, obj, want)
	}
	b.shot("center-audit-deny.png")

	// Its review link opens the review page, whose proof verifies.
	b.do(chromedp.Click(fmt.Sprintf(`tr[data-seq="%d"] a[href="review/%d"]`, seq, seq)))
	b.wait("the review page", fmt.Sprintf(`location.pathname === "%s/review/%d" && document.querySelector("h1") && document.querySelector("h1").textContent.includes("Row %d")`, pre, seq, seq), 10*time.Second)
	b.wait("the inclusion proof", `document.querySelector("#proof.ok") !== null && document.querySelector("#proof").textContent.includes("in checkpoint")`, 15*time.Second)
	if got := eval[string](b, `document.querySelector("#missing-cap").textContent`); got != "fs.read:"+home+"/.ssh/id_ed25519" {
		t.Errorf("missing capability shown: %q", got)
	}
	if got := eval[string](b, `document.querySelector(".deny-line").textContent`); !strings.Contains(got, "nosy-reviewer") || !strings.Contains(got, "ECAPABILITY") {
		t.Errorf("headline: %q", got)
	}
	b.shot("center-review.png")

	// Quarantine from the review page: the API says Quarantined, the chain
	// has the row, naming the user and the Center.
	b.do(chromedp.Click(`button[data-action="quarantine"]`))
	deadline := time.Now().Add(20 * time.Second)
	for e.agent(nosy).State != "Quarantined" {
		if time.Now().After(deadline) {
			t.Fatalf("after Quarantine: %s", e.agent(nosy).State)
		}
		time.Sleep(100 * time.Millisecond)
	}
	rows := e.rows("--aid", strconv.FormatUint(nosy, 10), "--type", "agent.state")
	r := rows[len(rows)-1]
	if r.Object != "Quarantined" || r.Detail["via"] != "center" || r.Detail["by_uid"] != "0" || r.Detail["by_user"] != "root" {
		t.Fatalf("quarantine row: %+v", r)
	}
	b.wait("the page shows it", `document.querySelector("#agent-state") && document.querySelector("#agent-state").textContent === "Quarantined"`, 15*time.Second)
	b.shot("center-quarantined.png")

	// Markup from the chain is text: the audit feed (live and paged), the
	// agent page and a review page.
	noMarkup := `document.querySelectorAll("img:not([src^='/assets/']), svg[onload], main script, main b, [onerror], [onmouseover]").length === 0`
	for _, p := range []string{fmt.Sprintf("/audit?aid=%d", xss), fmt.Sprintf("/agents/%d", xss)} {
		b.do(chromedp.Navigate(base + p))
		for _, n := range xssNames {
			b.wait(p+" shows "+n, fmt.Sprintf(`[...document.querySelectorAll("td.obj")].some(td => td.textContent.endsWith(%s))`, strconv.Quote("/"+n)), 20*time.Second)
		}
		if !eval[bool](b, noMarkup) {
			t.Fatalf("%s: markup from the chain became elements", p)
		}
	}
	b.do(chromedp.Navigate(base + fmt.Sprintf("/audit?aid=%d&result=deny", xss)))
	b.wait("live xss rows", `document.querySelectorAll("tr[data-live].deny").length > 0`, 20*time.Second)
	if !eval[bool](b, noMarkup) {
		t.Fatal("live rows: markup from the chain became elements")
	}
	dseq := eval[int](b, `Number(document.querySelector("tr.deny[data-seq]").dataset.seq)`)
	b.do(chromedp.Navigate(base + fmt.Sprintf("/review/%d", dseq)))
	if got := eval[string](b, `document.querySelector("#row-object").textContent`); !strings.HasPrefix(got, outside+"/") {
		t.Fatalf("review object %q", got)
	}
	if !eval[bool](b, noMarkup) {
		t.Fatal("review page: markup from the chain became elements")
	}
	b.shot("center-xss.png")

	// The plots: token and CPU lines per agent, and the CPU share bars.
	b.do(chromedp.Navigate(base + "/plots"))
	b.wait("the plots drawn", `document.querySelectorAll("#plot-cpu path.series").length > 0 && document.querySelectorAll("#plot-share .bar").length > 0 && document.querySelectorAll("#plot-tokens path.series").length > 0`, 30*time.Second)
	b.shot("center-plots.png")

	// Dark mode follows prefers-color-scheme; a phone-narrow window needs no
	// sideways scrolling and still offers the filter and the table.
	if _, err := chromedp.Call(b.ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
		Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}}); err != nil {
		t.Fatal(err)
	}
	b.do(chromedp.EmulateViewport(390, 844), chromedp.Navigate(base+"/"))
	b.wait("the agents, narrow and dark", `document.querySelectorAll("#agents-body tr").length === 32`, 20*time.Second)
	if !eval[bool](b, `getComputedStyle(document.body).backgroundColor === "rgb(14, 17, 22)"`) {
		t.Errorf("dark mode: body background %s", eval[string](b, `getComputedStyle(document.body).backgroundColor`))
	}
	if !eval[bool](b, `document.documentElement.scrollWidth <= window.innerWidth + 1`) {
		t.Errorf("narrow window scrolls sideways: %d > %d", eval[int](b, `document.documentElement.scrollWidth`), eval[int](b, `window.innerWidth`))
	}
	if !eval[bool](b, `(() => { const f = document.querySelector("#filter").getBoundingClientRect(); return f.width > 100 && f.right <= window.innerWidth; })()`) {
		t.Error("narrow window: the filter is not usable")
	}
	// Every control has a label a screen reader reads.
	if n := eval[int](b, `[...document.querySelectorAll("input, select, button")].filter(el => !(el.labels && el.labels.length) && !el.getAttribute("aria-label") && !el.textContent.trim() && !el.title).length`); n != 0 {
		t.Errorf("%d controls without a label", n)
	}
	// The keyboard: / focuses the filter, typing filters, j and Enter open.
	b.do(chromedp.KeyEvent("/"))
	b.wait("the filter focused", `document.activeElement && document.activeElement.id === "filter"`, 5*time.Second)
	// (The DevTools protocol types the "/" too, which a real keyboard's
	// prevented keydown would not: start from an empty field.)
	t.Logf("the filter after the / key: %q", eval[string](b, `document.querySelector("#filter").value`))
	eval[bool](b, `(document.querySelector("#filter").value = "", true)`)
	b.do(chromedp.KeyEvent("nosy"))
	b.wait("one row left", `document.querySelectorAll("#agents-body tr").length === 1`, 5*time.Second)
	b.do(chromedp.KeyEvent("\x1b")) // Esc clears and leaves the filter
	b.wait("all rows back", `document.querySelectorAll("#agents-body tr").length === 32 && document.activeElement !== document.querySelector("#filter")`, 5*time.Second)
	b.shot("center-narrow-dark.png")
	if b.dialogs.Load() != 0 {
		t.Fatalf("%d JavaScript dialogs opened", b.dialogs.Load())
	}
}

// centerCookieAcrossPorts: a server on another loopback port, visited by
// the logged-in browser, is sent no Center cookie anywhere but under the
// session's secret path (which is why that path is never given away: the
// browser sends it there on any port, the control below).
func centerCookieAcrossPorts(t *testing.T, b *browser, pre string) {
	t.Helper()
	var mu sync.Mutex
	got := map[string]string{}
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got[r.URL.Path] = r.Header.Get("Cookie")
		mu.Unlock()
		io.WriteString(w, "<!doctype html><title>another port</title>")
	}))
	defer other.Close()
	center := eval[string](b, `location.href`)
	paths := []string{"/", "/login", "/review/1", "/api/agents", "/s/", "/s/" + strings.Repeat("A", 43) + "/", pre}
	for _, p := range append(paths, pre+"/") {
		b.do(chromedp.Navigate(other.URL + p))
	}
	mu.Lock()
	for _, p := range paths {
		if strings.Contains(got[p], "coconut_center") {
			t.Errorf("a server on another port was sent the Center's cookie at %s: %q", p, got[p])
		}
	}
	if !strings.Contains(got[pre+"/"], "coconut_center") {
		t.Errorf("control: the browser did not send the cookie to another port even under the session's path (%q): this test no longer shows what it should", got[pre+"/"])
	}
	mu.Unlock()
	b.do(chromedp.Navigate(center))
	b.wait("the Center again", `document.querySelector("#live.on") !== null`, 20*time.Second)
}
