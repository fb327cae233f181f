package top

import (
	"context"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/coconut-os/coconut/api"
)

func loaded() *Model {
	m := New(context.Background(), Source{})
	t0 := time.Now()
	m.take(snapshot{at: t0, agents: []api.Agent{
		{AID: 1, Name: "planner", Class: "planner", State: "Active"},
		{AID: 2, Name: "coder-1", Class: "coder", State: "Active"},
		{AID: 31, Name: "nosy-reviewer", Class: "reviewer", State: "Capability-denied"},
	}, usage: map[uint64]api.QuotaUsage{1: {CPUUsec: 0}, 2: {CPUUsec: 0}, 31: {CPUUsec: 0}}})
	m.take(snapshot{at: t0.Add(time.Second), agents: m.snap.agents,
		usage: map[uint64]api.QuotaUsage{1: {CPUUsec: 100_000}, 2: {CPUUsec: 500_000}, 31: {CPUUsec: 0}}})
	m.Update(rowsMsg{{Seq: 9, AID: 31, Type: "cap.deny", Result: "deny", Cap: "fs.read", Object: "/home/u/.ssh/id_ed25519"}})
	return m
}

func names(m *Model) string {
	var out []string
	for _, a := range m.visible() {
		out = append(out, a.Name)
	}
	return strings.Join(out, " ")
}

func press(m *Model, keys ...string) {
	for _, k := range keys {
		var msg tea.KeyMsg
		switch k {
		case "enter":
			msg = tea.KeyMsg{Type: tea.KeyEnter}
		case "esc":
			msg = tea.KeyMsg{Type: tea.KeyEsc}
		case "backspace":
			msg = tea.KeyMsg{Type: tea.KeyBackspace}
		case "down":
			msg = tea.KeyMsg{Type: tea.KeyDown}
		default:
			msg = tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(k)}
		}
		m.Update(msg)
	}
}

func TestKeys(t *testing.T) {
	tests := []struct {
		name  string
		keys  []string
		order string
		mode  mode
	}{
		{"start", nil, "planner coder-1 nosy-reviewer", modeTable},
		{"filter typed at once", []string{"/nosy", "enter"}, "nosy-reviewer", modeTable},
		{"filter by class", []string{"/", "c", "o", "d", "enter"}, "coder-1", modeTable},
		{"filter by AID", []string{"/31", "enter"}, "nosy-reviewer", modeTable},
		{"filter cleared", []string{"/nosy", "enter", "esc"}, "planner coder-1 nosy-reviewer", modeTable},
		{"backspace", []string{"/nosyx", "backspace", "enter"}, "nosy-reviewer", modeTable},
		{"sort by name", []string{"s"}, "coder-1 nosy-reviewer planner", modeTable},
		{"sort by cpu", []string{"s", "s", "s"}, "coder-1 planner nosy-reviewer", modeTable},
		{"sort by denies", []string{"s", "s", "s", "s", "s", "s"}, "nosy-reviewer planner coder-1", modeTable},
		{"reverse", []string{"r"}, "nosy-reviewer coder-1 planner", modeTable},
		{"detail", []string{"down", "enter"}, "planner coder-1 nosy-reviewer", modeDetail},
		{"detail back", []string{"enter", "q"}, "planner coder-1 nosy-reviewer", modeTable},
		{"help", []string{"?"}, "planner coder-1 nosy-reviewer", modeHelp},
		{"help closes", []string{"?", "x"}, "planner coder-1 nosy-reviewer", modeTable},
		{"kill asks", []string{"k"}, "planner coder-1 nosy-reviewer", modeConfirm},
		{"kill declined", []string{"k", "n"}, "planner coder-1 nosy-reviewer", modeTable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := loaded()
			press(m, tt.keys...)
			if got := names(m); got != tt.order {
				t.Errorf("order %q, want %q", got, tt.order)
			}
			if m.mode != tt.mode {
				t.Errorf("mode %d, want %d", m.mode, tt.mode)
			}
		})
	}
}

func TestConfirmNamesTheAgent(t *testing.T) {
	m := loaded()
	press(m, "/nosy", "enter", "Q")
	if m.mode != modeConfirm || m.confirm.kill || m.confirm.aid != 31 {
		t.Fatalf("confirm %+v mode %d", m.confirm, m.mode)
	}
	if v := m.View(); !strings.Contains(v, "Quarantine nosy-reviewer (AID 31)? y/N") {
		t.Fatalf("view:\n%s", v)
	}
	press(m, "n")
	if m.status != "cancelled" {
		t.Fatalf("status %q", m.status)
	}
}

func TestViewFigures(t *testing.T) {
	m := loaded()
	m.width = 200
	v := m.View()
	for _, want := range []string{"3 active / 3 agents", "1 denies", "chain 9", "50.0", "cap.deny deny fs.read /home/u/.ssh/id_ed25519"} {
		if !strings.Contains(v, want) {
			t.Errorf("view lacks %q:\n%s", want, v)
		}
	}
	if strings.Contains(v, "\x1b[") {
		t.Error("colour written to a discarded output")
	}
}

func TestQuitKeys(t *testing.T) {
	for _, k := range []tea.KeyMsg{{Type: tea.KeyRunes, Runes: []rune("q")}, {Type: tea.KeyCtrlC}} {
		m := loaded()
		_, cmd := m.Update(k)
		if cmd == nil {
			t.Fatalf("%s: no command", k)
		}
		if _, ok := cmd().(tea.QuitMsg); !ok {
			t.Fatalf("%s does not quit", k)
		}
	}
}
