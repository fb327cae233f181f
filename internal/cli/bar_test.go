package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBarFormats: each format is one line a bar reads, with the figures
// and the class of the state.
func TestBarFormats(t *testing.T) {
	up := barState{Agents: 31, Active: 29, TokensIn: 12000, TokensOut: 345, Slots: 4, InFlight: 3, Queued: 2}
	var w struct {
		Text, Tooltip, Class, Alt string
		Percentage                int
	}
	if err := json.Unmarshal([]byte(barLine("waybar", up)), &w); err != nil {
		t.Fatal(err)
	}
	if w.Text != "coconut 29 active · 12.3k tok" || w.Class != "active" || w.Percentage != 75 ||
		!strings.Contains(w.Tooltip, "29 active of 31 agents") || !strings.Contains(w.Tooltip, "tokens 12000 in · 345 out") {
		t.Fatalf("waybar: %+v", w)
	}
	var i3 struct {
		FullText  string `json:"full_text"`
		ShortText string `json:"short_text"`
		Color     string
		Urgent    bool
	}
	down := barState{Down: "dial unix /x: connect: no such file or directory"}
	if err := json.Unmarshal([]byte(barLine("i3blocks", down)), &i3); err != nil {
		t.Fatal(err)
	}
	if i3.FullText != "coconut down" || !i3.Urgent || i3.Color != barColor("down") {
		t.Fatalf("i3blocks down: %+v", i3)
	}
	if got := barLine("polybar", barState{}); got != "%{F#abb2bf}coconut 0 active · 0 tok%{F-}" {
		t.Fatalf("polybar idle: %q", got)
	}
	for _, l := range []string{barLine("waybar", up), barLine("waybar", down), barLine("i3blocks", up), barLine("polybar", down)} {
		if strings.Contains(l, "\n") {
			t.Fatalf("more than one line: %q", l)
		}
	}
	if w := barLine("waybar", down); !strings.Contains(w, `"class":"down"`) || !strings.Contains(w, "no such file") {
		t.Fatalf("waybar down: %s", w)
	}
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1.0k", 12345: "12.3k", 4_560_000: "4.6M"} {
		if got := barCount(n); got != want {
			t.Errorf("barCount(%d) = %q, want %q", n, got, want)
		}
	}
}

// TestBarDown: with no coconutd at the socket, bar prints the down line,
// one error line on stderr, and returns; --watch keeps going without
// repeating either until its context ends.
func TestBarDown(t *testing.T) {
	g := &globals{socket: filepath.Join(t.TempDir(), "none.sock")}
	var out, errw bytes.Buffer
	if err := runBar(context.Background(), g, "waybar", false, &out, &errw); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `"class":"down"`) || strings.Count(errw.String(), "\n") != 1 ||
		!strings.HasPrefix(errw.String(), "coconut bar: coconutd unreachable: ") {
		t.Fatalf("out %q err %q", out.String(), errw.String())
	}
	out.Reset()
	errw.Reset()
	ctx, cancel := context.WithTimeout(context.Background(), barPoll+barPoll/2)
	defer cancel()
	start := time.Now()
	if err := runBar(ctx, g, "polybar", true, &out, &errw); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > barPoll*3 {
		t.Fatalf("--watch did not end with its context: %s", time.Since(start))
	}
	if strings.Count(out.String(), "\n") != 1 || strings.Count(errw.String(), "\n") != 1 {
		t.Fatalf("--watch repeated an unchanged line: out %q err %q", out.String(), errw.String())
	}
}
