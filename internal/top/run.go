package top

import (
	"context"
	"errors"
	"io"
	"os"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/coconut-os/coconut/client"
)

// Run is the interactive top on the terminal until q or ctrl-c.
func Run(ctx context.Context, c *client.Client) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	m := New(ctx, Source{C: c})
	m.SetOutput(os.Stdout)
	p := tea.NewProgram(m, tea.WithAltScreen(), tea.WithContext(ctx))
	go m.src.Follow(ctx, p.Send)
	_, err := p.Run()
	if errors.Is(err, tea.ErrProgramKilled) && ctx.Err() != nil {
		return nil
	}
	return err
}

// Once writes one frame of the table to w: a poll, and the rows the caller
// may see read through the audit query (the stream has no end to wait
// for).
func Once(ctx context.Context, c *client.Client, w io.Writer, width int) error {
	m := New(ctx, Source{C: c})
	m.SetOutput(w)
	m.width = width
	snap := m.src.poll(ctx)
	if snap.err != nil {
		return snap.err
	}
	m.take(snap)
	m.height = len(snap.agents) + 6
	q := client.AuditQuery{Limit: 1000}
	for {
		page, err := c.AgentAuditQuery(ctx, q)
		if err != nil {
			return err
		}
		for _, r := range page.Records {
			m.addRow(r)
		}
		if page.Next == 0 {
			break
		}
		q.AfterSeq = page.Next
	}
	m.cursor, m.printed = -1, true // no selection, no key hints
	_, err := io.WriteString(w, m.View()+"\n")
	return err
}
