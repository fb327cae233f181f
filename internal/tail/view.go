package tail

import (
	"context"
	"fmt"

	"github.com/coconut-os/coconut/api"
	"github.com/coconut-os/coconut/client"
	"github.com/coconut-os/coconut/internal/audit"
)

// view is coconut-tail's screen (issue 13), the view the README shows:
// a header (chain head, latest signed checkpoint), then per agent its
// spawn, attestation and Active rows, then every row as it is appended,
// from the daemon's event stream. Denies are red on a terminal; NO_COLOR
// or a pipe gives plain text (the printer's rule).
func view(ctx context.Context, c *client.Client, f *Flags, pr *Printer) error {
	doc, err := c.Doctor(ctx)
	if err != nil {
		return err
	}
	head := doc.ChainHead
	pr.header(tailHeader(doc))
	agents, err := c.Agents(ctx, false)
	if err != nil {
		return err
	}
	for _, a := range agents {
		if f.aid != 0 && a.AID != f.aid {
			continue
		}
		rows, err := birthRows(ctx, c, a.AID, head)
		if err != nil {
			return err
		}
		pr.header(fmt.Sprintf("%s (AID %d) · %s · %s", a.Name, a.AID, a.Class, a.State))
		for _, r := range rows {
			pr.Print(r)
		}
	}
	pr.header(fmt.Sprintf("live from row %d", head+1))
	st, err := c.Events(ctx, head, f.eventFilter())
	if err != nil {
		return err
	}
	defer st.Close()
	for st.Next() {
		pr.Print(st.Record())
	}
	return st.Err()
}

func tailHeader(doc *api.Doctor) string {
	h := fmt.Sprintf("coconut-tail · chain head %d", doc.ChainHead)
	if doc.ChainHeadHash != "" {
		h += " (" + short(doc.ChainHeadHash) + ")"
	}
	if doc.Checkpoint > 0 {
		h += fmt.Sprintf(" · latest checkpoint %d signed by %s", doc.Checkpoint, doc.HostKeyID)
	} else {
		h += " · no signed checkpoint yet"
	}
	return h + " · enforcer " + doc.Enforcer
}

func short(h string) string {
	if len(h) > 16 {
		return h[:16] + "…"
	}
	return h
}

// birthRows are the agent's spawn, attestation and first Active rows up to
// row head (later ones arrive on the stream).
func birthRows(ctx context.Context, c *client.Client, aid, head uint64) ([]api.Record, error) {
	var out []api.Record
	var spawn, attest, active bool
	q := client.AuditQuery{AID: &aid, Type: "agent.*", Limit: 1000}
	for !(spawn && attest && active) {
		page, err := c.AgentAuditQuery(ctx, q)
		if err != nil {
			return nil, err
		}
		for _, r := range page.Records {
			if r.Seq > head {
				return out, nil
			}
			switch {
			case r.Type == audit.TypeAgentSpawn && !spawn:
				spawn = true
			case r.Type == audit.TypeAgentAttest && !attest:
				attest = true
			case r.Type == audit.TypeAgentState && r.Object == "Active" && !active:
				active = true
			default:
				continue
			}
			out = append(out, r)
		}
		if page.Next == 0 {
			break
		}
		q.AfterSeq = page.Next
	}
	return out, nil
}

// header writes a section line: bold on a terminal, "== ... ==" plain.
func (p *Printer) header(s string) {
	if p.color {
		fmt.Fprintf(p.w, "\x1b[1m%s\x1b[0m\n", s)
		return
	}
	fmt.Fprintf(p.w, "== %s ==\n", s)
}
