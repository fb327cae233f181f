package center

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/coconut-os/coconut/internal/events"
)

// Live streams to pages.
const (
	streamTick       = 2 * time.Second // agents and top bar refresh
	maxStreamsPerUID = 16              // open pages per uid
	flushEvery       = 10 * time.Millisecond
)

// streamCount bounds open streams per uid: a page left open many times
// over must not hold the daemon's memory.
type streamCount struct {
	mu sync.Mutex
	n  map[uint32]int
}

func (s *streamCount) take(uid uint32) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n == nil {
		s.n = map[uint32]int{}
	}
	if s.n[uid] >= maxStreamsPerUID {
		return false
	}
	s.n[uid]++
	return true
}

func (s *streamCount) give(uid uint32) {
	s.mu.Lock()
	s.n[uid]--
	s.mu.Unlock()
}

var streams streamCount

// stream is the pages' live feed (Server-Sent Events): `row` events from
// the daemon's one event stream (events.Service, as the session's uid,
// with the page's filter), and every two seconds `agents` (when changed)
// and `summary` for the table and the top bar. A reconnecting page sends
// Last-Event-ID and misses no row.
func (c *Center) stream(w http.ResponseWriter, r *http.Request, v *view) error {
	q, err := parseFeed(r.URL.RawQuery)
	if err != nil {
		return err
	}
	if q.Before != 0 {
		return errorf(http.StatusBadRequest, "the stream takes since=, not before=")
	}
	since := q.Since
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		if since, err = parseNum("Last-Event-ID", id); err != nil {
			return err
		}
	}
	if since == 0 {
		since, _ = c.cfg.Chain.Head()
	}
	if c.cfg.Events == nil {
		return errorf(http.StatusServiceUnavailable, "this daemon has no event stream")
	}
	if !streams.take(v.caller.UID) {
		return errorf(http.StatusTooManyRequests, "%d Center pages are open for this uid: close some", maxStreamsPerUID)
	}
	defer streams.give(v.caller.UID)
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	defer context.AfterFunc(c.streams, cancel)()
	st, err := c.cfg.Events.Subscribe(ctx, v.caller, since, events.Filter{AID: q.AID, Type: q.Type, Result: q.Result})
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	fl, _ := w.(http.Flusher)
	bw := bufio.NewWriterSize(w, 32<<10)
	flush := func() bool {
		if bw.Flush() != nil {
			return false
		}
		if fl != nil {
			fl.Flush()
		}
		return true
	}
	var lastAgents []byte
	tick := func() bool {
		list, sum := c.stats.view(v.caller, false)
		sum.User = userName(v.caller.UID)
		if b, err := json.Marshal(list); err == nil && !bytes.Equal(b, lastAgents) {
			writeEvent(bw, "", "agents", b)
			lastAgents = b
		}
		if b, err := json.Marshal(sum); err == nil {
			writeEvent(bw, "", "summary", b)
		}
		return flush()
	}
	bw.WriteString("retry: 1000\n\n")
	if !tick() {
		return nil
	}
	t := time.NewTicker(streamTick)
	defer t.Stop()
	// Rows are flushed at most every flushEvery: a lone row goes out after
	// that long, a flood in one write per interval instead of one a row.
	flushT := time.NewTimer(time.Hour)
	flushT.Stop()
	pending := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			pending = false
			if !tick() {
				return nil
			}
		case <-flushT.C:
			pending = false
			if !flush() {
				return nil
			}
		case ev, ok := <-st.C:
			if !ok {
				flush()
				return nil
			}
			b, err := json.Marshal(ev.Row())
			if err != nil {
				continue
			}
			writeEvent(bw, strconv.FormatUint(ev.Record.Seq, 10), "row", b)
			if !pending {
				pending = true
				flushT.Reset(flushEvery)
			}
		}
	}
}

// writeEvent writes one SSE event. JSON has no raw newlines, so data is
// one line.
func writeEvent(bw *bufio.Writer, id, name string, data []byte) {
	if id != "" {
		bw.WriteString("id: ")
		bw.WriteString(id)
		bw.WriteByte('\n')
	}
	bw.WriteString("event: ")
	bw.WriteString(name)
	bw.WriteString("\ndata: ")
	bw.Write(data)
	bw.WriteString("\n\n")
}
