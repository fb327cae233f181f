package center

import (
	"net/http"
	"strconv"

	"github.com/coconut-os/coconut/api"
	"github.com/coconut-os/coconut/internal/audit"
	"github.com/coconut-os/coconut/internal/events"
)

// Paging back reads the chain in windows that grow until a page is full;
// one request reads at most maxScan rows and then offers to go on.
const maxScan = 200_000

func (c *Center) apiSummary(w http.ResponseWriter, r *http.Request, v *view) error {
	if r.URL.RawQuery != "" {
		return errorf(http.StatusBadRequest, "summary takes no parameters")
	}
	_, sum := c.stats.view(v.caller, false)
	sum.User = userName(v.caller.UID)
	return reply(w, sum)
}

func (c *Center) apiAgents(w http.ResponseWriter, r *http.Request, v *view) error {
	all := false
	switch r.URL.RawQuery {
	case "":
	case "all=1":
		all = true
	default:
		return errorf(http.StatusBadRequest, "agents takes only all=1")
	}
	list, _ := c.stats.view(v.caller, all)
	return reply(w, list)
}

func (c *Center) apiSeries(w http.ResponseWriter, r *http.Request, v *view) error {
	if r.URL.RawQuery != "" {
		return errorf(http.StatusBadRequest, "series takes no parameters")
	}
	return reply(w, c.stats.series(v.caller))
}

// auditPageJSON is a page of the feed: rows newest first, and the seq to
// ask for as before= to go further back (0: this is the oldest page).
type auditPageJSON struct {
	Rows  []api.Record `json:"rows"`
	Older uint64       `json:"older"`
	Head  uint64       `json:"head"`
}

func (c *Center) apiAudit(w http.ResponseWriter, r *http.Request, v *view) error {
	q, err := parseFeed(r.URL.RawQuery)
	if err != nil {
		return err
	}
	rows, older, err := c.pageBack(v, q)
	if err != nil {
		return err
	}
	head, _ := c.cfg.Chain.Head()
	return reply(w, auditPageJSON{Rows: rows, Older: older, Head: head})
}

// checkAID refuses a filter on an agent the caller may not see, as the
// audit query does.
func (c *Center) checkAID(v *view, q feedQuery) error {
	if q.AID != nil && !c.cfg.Agents.SeesRow(v.caller, *q.AID) {
		if *q.AID == 0 {
			return errorf(http.StatusNotFound, "the daemon's own rows (aid 0) are root's")
		}
		return errorf(http.StatusNotFound, "no agent %d", *q.AID)
	}
	return nil
}

// pageBack returns up to q.Limit rows the caller may see that match q,
// older than q.Before (the newest when 0), newest first; and the cursor
// for the page before them (0 when there is none). The filter is
// audit.Query's and the visibility agent.Manager's, as for the Unix API.
func (c *Center) pageBack(v *view, q feedQuery) ([]api.Record, uint64, error) {
	if err := c.checkAID(v, q); err != nil {
		return nil, 0, err
	}
	head, _ := c.cfg.Chain.Head()
	before := q.Before
	if before == 0 || before > head+1 {
		before = head + 1
	}
	var got []audit.Record // ascending, all < before
	scanned := 0
	window := uint64(q.Limit) * 2
	for before > 1 && len(got) < q.Limit && scanned < maxScan {
		after := uint64(0)
		if before-1 > window {
			after = before - 1 - window
		}
		var chunk []audit.Record
		for cur := after; cur < before-1 && scanned < maxScan; {
			recs, err := c.cfg.Chain.Query(audit.Query{AID: q.AID, Type: q.Type, Result: q.Result, AfterSeq: cur, Limit: audit.MaxLimit})
			if err != nil {
				return nil, 0, errorf(http.StatusBadRequest, "%v", err)
			}
			for _, rec := range recs {
				if rec.Seq >= before {
					break
				}
				if c.cfg.Agents.SeesRow(v.caller, rec.AID) {
					chunk = append(chunk, rec)
				}
			}
			scanned += len(recs) + 1
			if len(recs) < audit.MaxLimit {
				break
			}
			cur = recs[len(recs)-1].Seq
		}
		got = append(chunk, got...)
		before = after + 1
		window *= 4
	}
	older := uint64(0)
	if len(got) > q.Limit {
		got = got[len(got)-q.Limit:]
	}
	if len(got) > 0 && (before > 1 || len(got) == q.Limit) {
		older = got[0].Seq
	} else if len(got) == 0 && before > 1 {
		older = before // scanned enough for one request: go on from here
	}
	out := make([]api.Record, len(got))
	for i, rec := range got {
		out[len(got)-1-i] = events.Row(rec)
	}
	return out, older, nil
}

// row returns audit row seq if the caller may see it; another user's row
// and a row that does not exist are the same 404, as in the Unix API.
func (c *Center) row(v *view, seqS string) (rec audit.Record, err error) {
	seq, err := parseNum("seq", seqS)
	if err != nil {
		return rec, err
	}
	recs, err := c.cfg.Chain.Query(audit.Query{AfterSeq: seq - 1, Limit: 1})
	if err != nil || len(recs) == 0 || recs[0].Seq != seq || !c.cfg.Agents.SeesRow(v.caller, recs[0].AID) {
		return rec, errorf(http.StatusNotFound, "no audit row %d you may see", seq)
	}
	return recs[0], nil
}

func (c *Center) apiProof(w http.ResponseWriter, r *http.Request, v *view) error {
	rec, err := c.row(v, r.PathValue("seq"))
	if err != nil {
		return err
	}
	return reply(w, c.proofOf(rec))
}

// act runs one action on an agent as the session's uid, through the same
// agent.Manager calls the Unix API makes; their rows carry via=center.
func (c *Center) act(w http.ResponseWriter, r *http.Request, v *view) error {
	aid, err := parseNum("aid", r.PathValue("aid"))
	if err != nil {
		return err
	}
	name := r.PathValue("action")
	caps, err := parseAction(name, r.Body)
	if err != nil {
		return err
	}
	ctx, m := r.Context(), c.cfg.Agents
	var out any
	switch name {
	case "quarantine":
		out, err = m.Quarantine(ctx, v.caller, aid)
	case "release":
		out, err = m.Release(ctx, v.caller, aid)
	case "kill":
		out, err = m.Kill(ctx, v.caller, aid)
	case "grant":
		out, err = m.Grant(ctx, v.caller, aid, caps)
	case "revoke":
		out, err = m.Revoke(ctx, v.caller, aid, caps)
	}
	if err != nil {
		return err
	}
	return reply(w, map[string]any{"aid": strconv.FormatUint(aid, 10), "action": name, "result": out})
}
