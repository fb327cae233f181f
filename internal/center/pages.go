package center

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/coconut-os/coconut/api"
	"github.com/coconut-os/coconut/internal/audit"
	"github.com/coconut-os/coconut/internal/events"
)

// assetFS holds the pages' templates and their static assets: the Center
// needs nothing from the network.
//
//go:embed assets templates
var assetFS embed.FS

// page is what every template gets.
type page struct {
	Title  string
	Page   string // agents, agent, audit, review, plots
	CSRF   string
	Base   string // /s/PATH/: the <base> every relative link resolves from
	User   string
	Sum    summary
	Stream string // the live stream's query for this page
	Body   any
}

var funcs = template.FuncMap{
	"glyphKey": glyphKey,
	"stateKey": func(s string) string { return strings.ToLower(strings.ReplaceAll(s, "-", "")) },
	"pct":      func(f float64) string { return fmt.Sprintf("%.1f%%", f) },
	"bytes":    humanBytes,
	"rfc":      func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) },
	"clock":    func(t time.Time) string { return t.Local().Format("15:04:05") },
	"ago":      ago,
	"short":    func(s string) string { return shortHash(s) },
	"join":     strings.Join,
	"cost":     func(f *float64) string { return fmt.Sprintf("%.2f", *f) },
	"tailPath": tailPath,
}

var templates = map[string]*template.Template{}

func init() {
	for _, name := range []string{"agents", "agent", "audit", "review", "plots"} {
		templates[name] = template.Must(template.New("layout.html").Funcs(funcs).ParseFS(assetFS, "templates/layout.html", "templates/rowtable.html", "templates/"+name+".html"))
	}
	templates["error"] = template.Must(template.New("error.html").Funcs(funcs).ParseFS(assetFS, "templates/error.html"))
}

// glyphKey picks the class glyph's shape: the dream team's classes have
// their own, anything else a hexagon.
func glyphKey(class string) string {
	switch class {
	case "planner", "researcher", "coder", "reviewer":
		return class
	}
	return "other"
}

func humanBytes(n int64) string {
	if n < 0 {
		return "–"
	}
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func ago(t time.Time) string {
	d := time.Since(t)
	switch {
	case d < time.Second:
		return "now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return t.Local().Format("2006-01-02")
}

// tailPath shortens a long path to its last two parts, where the news
// is ("…/.ssh/id_ed25519"); the page shows the whole path on hover.
func tailPath(s string) string {
	if len(s) <= 40 || !strings.HasPrefix(s, "/") {
		return s
	}
	parts := strings.Split(s, "/")
	if len(parts) <= 3 {
		return s
	}
	return "…/" + strings.Join(parts[len(parts)-2:], "/")
}

func shortHash(s string) string {
	if len(s) > 16 {
		return s[:16] + "…"
	}
	return s
}

// render executes a page into a buffer first, so that a template error
// is a clean 500 rather than half a page.
func (c *Center) render(w http.ResponseWriter, name string, p page) error {
	var b bytes.Buffer
	if err := templates[name].Execute(&b, p); err != nil {
		return fmt.Errorf("render %s: %w", name, err)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, err := b.WriteTo(w)
	return err
}

func (c *Center) page(v *view, name, title, stream string, body any) page {
	_, sum := c.stats.view(v.caller, false)
	sum.User = userName(v.caller.UID)
	return page{Title: title, Page: name, CSRF: v.sess.csrf, Base: v.base, User: sum.User, Sum: sum, Stream: stream, Body: body}
}

// errorPage shows a refusal with no data: no top bar, no names.
func (c *Center) errorPage(w http.ResponseWriter, r *http.Request, status int, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	templates["error"].Execute(w, map[string]any{"Status": status, "StatusText": http.StatusText(status), "Message": msg,
		"Login": status == http.StatusUnauthorized})
}

// --- the pages ---

func (c *Center) agentsPage(w http.ResponseWriter, r *http.Request, v *view) error {
	if r.URL.RawQuery != "" {
		return errorf(http.StatusBadRequest, "the agents page takes no parameters")
	}
	list, _ := c.stats.view(v.caller, false)
	return c.render(w, "agents", c.page(v, "agents", "Agents", "", map[string]any{"Agents": list, "States": states}))
}

var states = []string{"Spawning", "Attested", "Active", "Inference-blocked", "Capability-denied", "Quarantined", "Terminated-clean", "Terminated-revoked"}

// capLine is one capability of the bundle-against-ceiling table.
type capLine struct {
	Cap  string
	Held bool
}

func (c *Center) agentPage(w http.ResponseWriter, r *http.Request, v *view) error {
	if r.URL.RawQuery != "" {
		return errorf(http.StatusBadRequest, "the agent page takes no parameters")
	}
	aid, err := parseNum("aid", r.PathValue("aid"))
	if err != nil {
		return err
	}
	a, err := c.cfg.Agents.Get(v.caller, aid)
	if err != nil {
		return err
	}
	ceil, err := c.cfg.Agents.Ceiling(v.caller, aid)
	if err != nil {
		return err
	}
	var lines []capLine
	for _, cp := range ceil {
		lines = append(lines, capLine{Cap: cp, Held: slices.Contains(a.Caps, cp)})
	}
	for _, cp := range a.Caps {
		if !slices.Contains(ceil, cp) {
			lines = append(lines, capLine{Cap: cp, Held: true})
		}
	}
	q, err := c.cfg.Agents.Quota(v.caller, aid)
	if err != nil {
		return err
	}
	rows, _, err := c.pageBack(v, feedQuery{AID: &aid, Limit: 20})
	if err != nil {
		return err
	}
	list, _ := c.stats.view(v.caller, true)
	var av agentView
	for _, x := range list {
		if x.AID == aid {
			av = x
		}
	}
	body := map[string]any{"A": a, "V": av, "Caps": lines, "Quota": q, "Rows": rows, "Attest": c.attestation(v, aid),
		"Running": !isTerminal(a.State), "Quarantined": a.State == "Quarantined", "Meters": meters(q)}
	return c.render(w, "agent", c.page(v, "agent", fmt.Sprintf("%s (AID %d)", a.Name, aid), fmt.Sprintf("aid=%d", aid), body))
}

// meter is one bar of the quota panel.
type meter struct {
	Label      string
	Used, Max  string
	Pct        int
	Over       bool
	Unenforced bool
}

func meters(q *api.Quota) []meter {
	var out []meter
	add := func(label string, used, max int64, fmtv func(int64) string) {
		m := meter{Label: label, Used: fmtv(used), Max: "no limit"}
		if max > 0 {
			m.Max = fmtv(max)
			m.Pct = int(min(100, 100*used/max))
			m.Over = used >= max
		}
		out = append(out, m)
	}
	num := func(n int64) string { return fmt.Sprintf("%d", n) }
	add("Memory", q.Usage.MemoryCurrent, q.Budget.MemoryMax, humanBytes)
	add("Processes", int64(q.Usage.Pids), int64(q.Budget.Pids), num)
	add("Inference tokens", q.Usage.Tokens, q.Budget.Tokens, num)
	return out
}

func (c *Center) auditPage(w http.ResponseWriter, r *http.Request, v *view) error {
	q, err := parseFeed(r.URL.RawQuery)
	if err != nil {
		return err
	}
	if q.Since != 0 {
		return errorf(http.StatusBadRequest, "the audit page pages with before=, not since=")
	}
	rows, older, err := c.pageBack(v, q)
	if err != nil {
		return err
	}
	f := map[string]string{"type": q.Type, "result": q.Result}
	if q.AID != nil {
		f["aid"] = fmt.Sprint(*q.AID)
	}
	stream := filterQuery(f)
	newest, olderHref := "audit", ""
	if stream != "" {
		newest += "?" + stream
	}
	if older != 0 {
		olderHref = "audit?" + stream
		if stream != "" {
			olderHref += "&"
		}
		olderHref += fmt.Sprintf("before=%d", older)
	}
	body := map[string]any{"Rows": rows, "Older": older, "Newest": q.Before == 0, "F": f, "Filter": stream, "NewestHref": newest, "OlderHref": olderHref,
		"Types": []string{audit.TypeCapDeny, audit.TypeCapGrant, audit.TypeCapRevoke, audit.TypeAgentState, audit.TypeAgentSpawn, "agent.*", audit.TypeInferenceCall}}
	if q.Before != 0 {
		stream = "" // an older page is not live
	}
	return c.render(w, "audit", c.page(v, "audit", "Audit", stream, body))
}

// filterQuery writes the feed filters back as a query string.
func filterQuery(f map[string]string) string {
	v := url.Values{}
	for _, k := range []string{"aid", "type", "result"} {
		if f[k] != "" {
			v.Set(k, f[k])
		}
	}
	return v.Encode()
}

func (c *Center) reviewPage(w http.ResponseWriter, r *http.Request, v *view) error {
	if r.URL.RawQuery != "" {
		return errorf(http.StatusBadRequest, "the review page takes no parameters")
	}
	rec, err := c.row(v, r.PathValue("seq"))
	if err != nil {
		return err
	}
	body := map[string]any{"R": events.Row(rec), "Details": details(rec.Detail), "Link": c.chainLink(rec), "Proof": c.proofOf(rec),
		"Deny": rec.Result == audit.ResultDeny, "Missing": missingCap(rec), "Errno": rec.Errno == int(api.ECapability)}
	if rec.AID != 0 {
		if a, err := c.cfg.Agents.Get(v.caller, rec.AID); err == nil {
			body["A"] = a
			body["Running"] = !isTerminal(a.State)
			body["Quarantined"] = a.State == "Quarantined"
			body["Attest"] = c.attestation(v, rec.AID)
			if m := missingCap(rec); m != "" {
				ok, err := c.cfg.Agents.CeilingCovers(v.caller, rec.AID, m)
				body["Grantable"] = err == nil && ok
				if err != nil {
					body["GrantWhy"] = err.Error()
				}
			}
		}
	}
	title := fmt.Sprintf("Row %d · %s", rec.Seq, rec.Type)
	return c.render(w, "review", c.page(v, "review", title, fmt.Sprintf("aid=%d", rec.AID), body))
}

func (c *Center) plotsPage(w http.ResponseWriter, r *http.Request, v *view) error {
	if r.URL.RawQuery != "" {
		return errorf(http.StatusBadRequest, "the plots page takes no parameters")
	}
	return c.render(w, "plots", c.page(v, "plots", "Plots", "", nil))
}
