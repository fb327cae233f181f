package top

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/charmbracelet/lipgloss"

	"github.com/coconut-os/coconut/api"
)

// styles are the view's colours, from a renderer bound to the output so
// that a pipe or NO_COLOR gets plain text.
type styles struct {
	bar, head, sel, dim, deny, ok, warn, key, title lipgloss.Style
}

func newStyles(out io.Writer) styles {
	r := lipgloss.NewRenderer(out)
	return styles{
		bar:   r.NewStyle().Bold(true).Foreground(lipgloss.AdaptiveColor{Light: "#1f2328", Dark: "#e6edf3"}),
		head:  r.NewStyle().Bold(true).Underline(true),
		sel:   r.NewStyle().Reverse(true),
		dim:   r.NewStyle().Faint(true),
		deny:  r.NewStyle().Foreground(lipgloss.Color("1")).Bold(true),
		ok:    r.NewStyle().Foreground(lipgloss.Color("2")),
		warn:  r.NewStyle().Foreground(lipgloss.Color("3")),
		key:   r.NewStyle().Bold(true),
		title: r.NewStyle().Bold(true).Foreground(lipgloss.Color("6")),
	}
}

// SetOutput binds the colours to where the frames are written.
func (m *Model) SetOutput(out io.Writer) { m.st = newStyles(out) }

// View draws one frame.
func (m *Model) View() string {
	var b strings.Builder
	b.WriteString(m.topBar())
	b.WriteString("\n")
	switch m.mode {
	case modeHelp:
		b.WriteString(m.help())
	case modeDetail:
		b.WriteString(m.detail())
	default:
		b.WriteString(m.table())
	}
	if !m.printed {
		b.WriteString("\n")
		b.WriteString(m.footer())
	}
	return b.String()
}

func (m *Model) topBar() string {
	active := 0
	for _, a := range m.snap.agents {
		if a.State == "Active" || a.State == "Capability-denied" || a.State == "Inference-blocked" {
			active++
		}
	}
	var in, out int64
	if inf := m.snap.inference; inf != nil {
		for _, a := range inf.Agents {
			in, out = in+a.TokensIn, out+a.TokensOut
		}
	}
	denies := strconv.Itoa(m.denies) + " denies"
	if m.denies > 0 {
		denies = m.st.deny.Render(denies)
	}
	line := fmt.Sprintf("coconut top   %d active / %d agents   tokens %s in · %s out   %s   chain %d",
		active, len(m.snap.agents), count(in), count(out), denies, m.head)
	if m.stream != "" {
		line += "   " + m.st.warn.Render(m.stream)
	}
	return m.st.bar.Render(line) + "\n"
}

// columns of the agent table.
var columns = []struct {
	name  string
	width int
	right bool
}{
	{"AID", 6, true}, {"NAME", 20, false}, {"CLASS", 11, false}, {"STATE", 18, false}, {"CPU%", 6, true},
	{"MEM", 8, true}, {"TOK IN", 8, true}, {"TOK OUT", 8, true}, {"DENIES", 7, true}, {"LAST EVENT", 0, false},
}

func cell(s string, w int, right bool) string {
	if w == 0 {
		return s
	}
	r := []rune(s)
	if len(r) > w {
		r = append(r[:w-1], '…')
	}
	s = string(r)
	if right {
		return strings.Repeat(" ", w-len(r)) + s
	}
	return s + strings.Repeat(" ", w-len(r))
}

func (m *Model) tableRows() int { return max(3, m.height-6) }

func (m *Model) table() string {
	if !m.loaded {
		return m.st.dim.Render("waiting for coconutd…") + "\n"
	}
	var b strings.Builder
	var head []string
	for i, c := range columns {
		name := c.name
		if i == sortColumn(sorts[m.sortBy]) {
			name += map[bool]string{false: "▼", true: "▲"}[m.reverse]
		}
		head = append(head, cell(name, c.width, c.right))
	}
	b.WriteString(m.st.head.Render(m.clip(strings.Join(head, " "))) + "\n")
	v := m.visible()
	if len(v) == 0 {
		if m.filter != "" {
			b.WriteString(m.st.dim.Render("no agent matches /"+m.filter) + "\n")
		} else {
			b.WriteString(m.st.dim.Render("no agents") + "\n")
		}
		return b.String()
	}
	n := m.tableRows()
	first := max(0, min(m.cursor-n/2, len(v)-n))
	tokens := m.tokens()
	for i := first; i < len(v) && i < first+n; i++ {
		a := v[i]
		u, hasU := m.snap.usage[a.AID]
		cpu, mem := "-", "-"
		if c, ok := m.cpu[a.AID]; ok {
			cpu = fmt.Sprintf("%.1f", c)
		}
		if hasU && u.MemoryCurrent >= 0 {
			mem = bytes(u.MemoryCurrent)
		}
		t := tokens[a.AID]
		last := ""
		if r := m.rows[a.AID]; r != nil && len(r.last) > 0 {
			last = rowText(r.last[len(r.last)-1])
		}
		cells := []string{strconv.FormatUint(a.AID, 10), a.Name, a.Class, a.State, cpu, mem,
			count(t.TokensIn), count(t.TokensOut), strconv.Itoa(m.deniesOf(a.AID)), last}
		var parts []string
		for j, c := range columns {
			parts = append(parts, cell(cells[j], c.width, c.right))
		}
		line := m.clip(strings.Join(parts, " "))
		switch {
		case i == m.cursor:
			line = m.st.sel.Render(line)
		case a.State == "Capability-denied" || a.State == "Quarantined":
			line = m.st.deny.Render(line)
		}
		b.WriteString(line + "\n")
	}
	if len(v) > n {
		b.WriteString(m.st.dim.Render(fmt.Sprintf("%d–%d of %d", first+1, min(first+n, len(v)), len(v))) + "\n")
	}
	return b.String()
}

func sortColumn(key string) int {
	return map[string]int{"aid": 0, "name": 1, "state": 3, "cpu": 4, "memory": 5, "tokens": 6, "denies": 8}[key]
}

func (m *Model) clip(s string) string {
	if r := []rune(s); m.width > 0 && len(r) > m.width {
		return string(r[:m.width])
	}
	return s
}

func rowText(r api.Record) string {
	s := r.Type
	if r.Result != "" {
		s += " " + r.Result
	}
	if r.Cap != "" {
		s += " " + r.Cap
	}
	if r.Object != "" {
		s += " " + r.Object
	}
	return s
}

func (m *Model) detail() string {
	a, ok := m.selected()
	if !ok {
		return m.st.dim.Render("no agent selected") + "\n"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n", m.st.title.Render(fmt.Sprintf("%s (AID %d)", a.Name, a.AID)))
	fmt.Fprintf(&b, "  class %s · state %s · user %s · pid %d · spawned %s\n", a.Class, a.State, a.User, a.PID, a.SpawnTime.Local().Format(time.DateTime))
	if a.Reason != "" {
		fmt.Fprintf(&b, "  reason: %s\n", a.Reason)
	}
	if u, ok := m.snap.usage[a.AID]; ok {
		mem := "-"
		if u.MemoryCurrent >= 0 {
			mem = bytes(u.MemoryCurrent)
		}
		fmt.Fprintf(&b, "  cpu %.1f%% · memory %s · pids %d · tokens %s\n", m.cpu[a.AID], mem, u.Pids, count(u.Tokens))
	}
	b.WriteString("\n" + m.st.key.Render("Capabilities") + "\n")
	if len(a.Caps) == 0 {
		b.WriteString("  (none)\n")
	}
	for _, c := range a.Caps {
		b.WriteString("  " + c + "\n")
	}
	r := m.rows[a.AID]
	if r == nil {
		r = &agentRows{}
	}
	if len(r.lastDenies) > 0 {
		b.WriteString("\n" + m.st.key.Render(fmt.Sprintf("Denies (%d, the last %d)", r.denies, len(r.lastDenies))) + "\n")
		m.rowLines(&b, r.lastDenies)
	}
	b.WriteString("\n" + m.st.key.Render("Last rows") + "\n")
	if len(r.last) == 0 {
		b.WriteString("  (none yet)\n")
	}
	m.rowLines(&b, r.last)
	return b.String()
}

func (m *Model) rowLines(b *strings.Builder, rows []api.Record) {
	for _, row := range rows {
		line := fmt.Sprintf("  %6d %s %s", row.Seq, row.Time.Local().Format("15:04:05.000"), rowText(row))
		if row.Result == "deny" {
			line = m.st.deny.Render(line)
		}
		b.WriteString(m.clip(line) + "\n")
	}
}

var helpText = [][2]string{
	{"↑ ↓ / ctrl-p ctrl-n / j", "move"}, {"pgup pgdown home end", "move by a page, to the ends"},
	{"s", "sort by the next column (aid, name, state, cpu, memory, tokens, denies)"}, {"r", "reverse the order"},
	{"/", "filter by name, class, state or AID (enter keeps it, esc clears it)"},
	{"enter", "the agent's detail: capabilities, usage, last rows (esc or q goes back)"},
	{"k", "kill the agent (asks first)"}, {"Q", "quarantine the agent (asks first)"},
	{"?", "this help"}, {"q, ctrl-c", "quit"},
}

func (m *Model) help() string {
	var b strings.Builder
	b.WriteString(m.st.title.Render("Keys") + "\n")
	for _, h := range helpText {
		fmt.Fprintf(&b, "  %s  %s\n", m.st.key.Render(cell(h[0], 24, false)), h[1])
	}
	b.WriteString("\n" + m.st.dim.Render("any key returns") + "\n")
	return b.String()
}

func (m *Model) footer() string {
	switch {
	case m.mode == modeConfirm:
		verb := "Quarantine"
		if m.confirm.kill {
			verb = "Kill"
		}
		return m.st.warn.Render(fmt.Sprintf("%s %s (AID %d)? y/N", verb, m.confirm.name, m.confirm.aid))
	case m.filtering:
		return "/" + m.filter + "█"
	}
	var parts []string
	if m.filter != "" {
		parts = append(parts, "filter /"+m.filter)
	}
	if m.status != "" {
		parts = append(parts, m.status)
	}
	parts = append(parts, m.st.dim.Render("? help · / filter · s sort · enter detail · k kill · Q quarantine · q quit"))
	return m.clip(strings.Join(parts, "   "))
}

func count(n int64) string {
	switch {
	case n >= 10_000_000:
		return fmt.Sprintf("%.0fM", float64(n)/1e6)
	case n >= 10_000:
		return fmt.Sprintf("%.0fk", float64(n)/1e3)
	}
	return strconv.FormatInt(n, 10)
}

func bytes(n int64) string {
	const k = 1024
	switch {
	case n >= k*k*k:
		return fmt.Sprintf("%.1fG", float64(n)/(k*k*k))
	case n >= k*k:
		return fmt.Sprintf("%.1fM", float64(n)/(k*k))
	case n >= k:
		return fmt.Sprintf("%.0fK", float64(n)/k)
	}
	return strconv.FormatInt(n, 10)
}
