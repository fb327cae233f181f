package top

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/coconut-os/coconut/api"
)

// lastRows is how many of an agent's rows the detail view keeps.
const lastRows = 8

// Sort orders, in the order `s` cycles through them.
var sorts = []string{"aid", "name", "state", "cpu", "memory", "tokens", "denies"}

type mode int

const (
	modeTable mode = iota
	modeDetail
	modeHelp
	modeConfirm
)

// agentRows is what the event stream told about one agent.
type agentRows struct {
	last       []api.Record // newest last, at most lastRows
	lastDenies []api.Record // newest last, at most lastDenyRows
	denies     int
}

// lastDenyRows is how many of an agent's denies the detail view keeps.
const lastDenyRows = 3

// pending is an action waiting for its confirmation.
type pending struct {
	kill bool // else quarantine
	aid  uint64
	name string
}

// Model is the interactive top's state.
type Model struct {
	ctx context.Context
	src Source

	snap    snapshot
	cpu     map[uint64]float64 // percent of one CPU over the last poll
	prev    snapshot
	rows    map[uint64]*agentRows
	denies  int
	head    uint64
	stream  string // why the stream is down ("" when it is up)
	loaded  bool   // a snapshot has arrived
	quitErr error

	sortBy    int
	reverse   bool
	filter    string
	filtering bool
	cursor    int
	mode      mode
	back      mode // where help and confirm return to
	confirm   pending
	status    string
	width     int
	height    int
	st        styles
	printed   bool // one frame for --once: no key hints
}

// New returns the model reading src.
func New(ctx context.Context, src Source) *Model {
	return &Model{ctx: ctx, src: src, cpu: map[uint64]float64{}, rows: map[uint64]*agentRows{}, width: 120, height: 40,
		st: newStyles(io.Discard)}
}

type tickMsg struct{}
type actionDone struct {
	msg string
	err error
}

func (m *Model) pollCmd() tea.Cmd {
	return func() tea.Msg { return m.src.Poll(m.ctx) }
}

// Init starts the first poll.
func (m *Model) Init() tea.Cmd { return m.pollCmd() }

// Update handles one message.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
	case snapshot:
		m.take(msg)
		return m, tea.Tick(Poll, func(time.Time) tea.Msg { return tickMsg{} })
	case tickMsg:
		return m, m.pollCmd()
	case rowsMsg:
		m.stream = ""
		for _, r := range msg {
			m.addRow(api.Record(r))
		}
	case streamErr:
		m.stream = "event stream lost, reconnecting"
		if msg.err != nil {
			m.stream += ": " + msg.err.Error()
		}
	case actionDone:
		m.status = msg.msg
		if msg.err != nil {
			m.status = msg.err.Error()
		}
		return m, m.pollCmd()
	case tea.KeyMsg:
		return m.key(msg)
	}
	return m, nil
}

func (m *Model) take(s snapshot) {
	if s.err != nil {
		m.status = "coconutd: " + s.err.Error()
		return
	}
	if m.loaded {
		m.prev = m.snap
	}
	m.snap, m.loaded = s, true
	if m.status != "" && strings.HasPrefix(m.status, "coconutd: ") {
		m.status = ""
	}
	dt := s.at.Sub(m.prev.at).Microseconds()
	for aid, u := range s.usage {
		if p, ok := m.prev.usage[aid]; ok && dt > 0 && u.CPUUsec >= p.CPUUsec {
			m.cpu[aid] = float64(u.CPUUsec-p.CPUUsec) * 100 / float64(dt)
		}
	}
	m.clampCursor()
}

func (m *Model) addRow(r api.Record) {
	m.head = max(m.head, r.Seq)
	if r.Result == "deny" {
		m.denies++
	}
	if r.AID == 0 {
		return
	}
	a := m.rows[r.AID]
	if a == nil {
		a = &agentRows{}
		m.rows[r.AID] = a
	}
	if r.Result == "deny" {
		a.denies++
		a.lastDenies = append(a.lastDenies, r)
		if len(a.lastDenies) > lastDenyRows {
			a.lastDenies = slices.Delete(a.lastDenies, 0, len(a.lastDenies)-lastDenyRows)
		}
	}
	a.last = append(a.last, r)
	if len(a.last) > lastRows {
		a.last = slices.Delete(a.last, 0, len(a.last)-lastRows)
	}
}

// visible is the agents after the filter, in the sort order.
func (m *Model) visible() []api.Agent {
	f := strings.ToLower(m.filter)
	var out []api.Agent
	for _, a := range m.snap.agents {
		if f == "" || strings.Contains(strings.ToLower(a.Name), f) || strings.Contains(strings.ToLower(a.Class), f) ||
			strings.Contains(strings.ToLower(a.State), f) || strings.HasPrefix(strconv.FormatUint(a.AID, 10), f) {
			out = append(out, a)
		}
	}
	tokens := m.tokens()
	key := sorts[m.sortBy]
	slices.SortStableFunc(out, func(x, y api.Agent) int {
		var c int
		switch key {
		case "name":
			c = strings.Compare(x.Name, y.Name)
		case "state":
			c = strings.Compare(x.State, y.State)
		case "cpu":
			c = -cmpF(m.cpu[x.AID], m.cpu[y.AID])
		case "memory":
			c = -cmpI(m.snap.usage[x.AID].MemoryCurrent, m.snap.usage[y.AID].MemoryCurrent)
		case "tokens":
			c = -cmpI(tokens[x.AID].TokensIn+tokens[x.AID].TokensOut, tokens[y.AID].TokensIn+tokens[y.AID].TokensOut)
		case "denies":
			c = -cmpI(int64(m.deniesOf(x.AID)), int64(m.deniesOf(y.AID)))
		}
		if c == 0 {
			c = cmpI(int64(x.AID), int64(y.AID))
		}
		if m.reverse {
			c = -c
		}
		return c
	})
	return out
}

func cmpF(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func cmpI(a, b int64) int { return cmpF(float64(a), float64(b)) }

func (m *Model) deniesOf(aid uint64) int {
	if a := m.rows[aid]; a != nil {
		return a.denies
	}
	return 0
}

func (m *Model) tokens() map[uint64]api.InferenceAgent {
	out := map[uint64]api.InferenceAgent{}
	if m.snap.inference != nil {
		for _, a := range m.snap.inference.Agents {
			out[a.AID] = a
		}
	}
	return out
}

func (m *Model) clampCursor() {
	n := len(m.visible())
	m.cursor = max(0, min(m.cursor, n-1))
}

func (m *Model) selected() (api.Agent, bool) {
	v := m.visible()
	if m.cursor < 0 || m.cursor >= len(v) {
		return api.Agent{}, false
	}
	return v[m.cursor], true
}

func (m *Model) key(k tea.KeyMsg) (tea.Model, tea.Cmd) {
	// Keys typed faster than they are read arrive as one message ("/nosy"
	// over a slow ssh link): take them one at a time.
	if k.Type == tea.KeyRunes && len(k.Runes) > 1 && !k.Paste {
		var cmds []tea.Cmd
		for _, r := range k.Runes {
			_, cmd := m.key(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{r}, Alt: k.Alt})
			cmds = append(cmds, cmd)
		}
		return m, tea.Sequence(cmds...)
	}
	s := k.String()
	if s == "ctrl+c" {
		return m, tea.Quit
	}
	switch m.mode {
	case modeHelp:
		m.mode = m.back
		return m, nil
	case modeConfirm:
		m.mode = m.back
		if s != "y" && s != "Y" {
			m.status = "cancelled"
			return m, nil
		}
		return m, m.act(m.confirm)
	}
	if m.filtering {
		switch k.Type {
		case tea.KeyEnter:
			m.filtering = false
		case tea.KeyEsc:
			m.filtering, m.filter = false, ""
		case tea.KeyBackspace:
			if r := []rune(m.filter); len(r) > 0 {
				m.filter = string(r[:len(r)-1])
			}
		case tea.KeyRunes, tea.KeySpace:
			if len(m.filter) < 64 {
				m.filter += string(k.Runes)
			}
		}
		m.clampCursor()
		return m, nil
	}
	switch s {
	case "q":
		if m.mode == modeDetail {
			m.mode = modeTable
			return m, nil
		}
		return m, tea.Quit
	case "esc":
		if m.mode == modeDetail {
			m.mode = modeTable
		} else if m.filter != "" {
			m.filter = ""
			m.clampCursor()
		}
	case "?":
		m.back, m.mode = m.mode, modeHelp
	case "/":
		m.filtering, m.mode = true, modeTable
	case "up", "ctrl+p":
		m.cursor = max(0, m.cursor-1)
	case "down", "ctrl+n", "j":
		m.cursor++
		m.clampCursor()
	case "pgup":
		m.cursor = max(0, m.cursor-m.tableRows())
	case "pgdown":
		m.cursor += m.tableRows()
		m.clampCursor()
	case "home", "g":
		m.cursor = 0
	case "end", "G":
		m.cursor = len(m.visible())
		m.clampCursor()
	case "s":
		m.sortBy = (m.sortBy + 1) % len(sorts)
	case "r":
		m.reverse = !m.reverse
	case "enter":
		if _, ok := m.selected(); ok {
			m.mode = modeDetail
		}
	case "k", "Q":
		if a, ok := m.selected(); ok {
			m.confirm = pending{kill: s == "k", aid: a.AID, name: a.Name}
			m.back, m.mode = m.mode, modeConfirm
		}
	}
	return m, nil
}

func (m *Model) act(p pending) tea.Cmd {
	c, ctx := m.src.C, m.ctx
	return func() tea.Msg {
		var a *api.Agent
		var err error
		verb := "quarantined"
		if p.kill {
			a, err = c.Kill(ctx, p.aid)
			verb = "killed"
		} else {
			a, err = c.Quarantine(ctx, p.aid)
		}
		if err != nil {
			return actionDone{err: fmt.Errorf("%s %s (AID %d): %w", strings.TrimSuffix(verb, "ed"), p.name, p.aid, err)}
		}
		return actionDone{msg: fmt.Sprintf("%s %s (AID %d): now %s", verb, p.name, p.aid, a.State)}
	}
}
