package events

import (
	"bufio"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/coconut-os/coconut/api"
)

// Heartbeat is how often an idle SSE stream sends a comment, so proxies and
// clients can tell a quiet stream from a dead one.
const Heartbeat = 15 * time.Second

// params are the query parameters of GET /v1/events.
var params = map[string]bool{"since": true, "aid": true, "type": true, "result": true}

// ParseRequest reads since and the filter of an event-stream request:
// ?since=SEQ&aid=N&type=T&result=allow|deny. A Last-Event-ID header (an
// EventSource reconnecting) takes the place of since. Anything malformed or
// unknown is an api.ErrInvalid naming it.
func ParseRequest(r *http.Request) (since uint64, f Filter, err error) {
	v := r.URL.Query()
	return parse(v, r.Header.Get("Last-Event-ID"))
}

func parse(v url.Values, lastEventID string) (since uint64, f Filter, err error) {
	for k, vs := range v {
		if !params[k] {
			return 0, f, api.Errorf(api.ErrInvalid, "unknown parameter %q (want since, aid, type, result)", k)
		}
		if len(vs) > 1 {
			return 0, f, api.Errorf(api.ErrInvalid, "parameter %q given %d times", k, len(vs))
		}
	}
	num := func(name, s string) (uint64, error) {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, api.Errorf(api.ErrInvalid, "%s %q: must be a decimal sequence number", name, s)
		}
		return n, nil
	}
	if s := v.Get("since"); s != "" {
		if since, err = num("since", s); err != nil {
			return 0, f, err
		}
	}
	if s := strings.TrimSpace(lastEventID); s != "" {
		if since, err = num("Last-Event-ID", s); err != nil {
			return 0, f, err
		}
	}
	if s := v.Get("aid"); s != "" {
		aid, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, f, api.Errorf(api.ErrInvalid, "aid %q: not a number", s)
		}
		f.AID = &aid
	}
	f.Type, f.Result = v.Get("type"), v.Get("result")
	if len(f.Type) > 256 {
		return 0, f, api.Errorf(api.ErrInvalid, "type: over 256 bytes")
	}
	return since, f, f.Check()
}

// Values is the query of a request for since and f, what ParseRequest
// reads back.
func Values(since uint64, f Filter) url.Values {
	v := url.Values{"since": {strconv.FormatUint(since, 10)}}
	if f.AID != nil {
		v.Set("aid", strconv.FormatUint(*f.AID, 10))
	}
	if f.Type != "" {
		v.Set("type", f.Type)
	}
	if f.Result != "" {
		v.Set("result", f.Result)
	}
	return v
}

// WriteEvent writes one event as an SSE message:
//
//	id: SEQ
//	event: row
//	data: {"seq":SEQ,...}
//
// The data is one line: JSON escapes every newline in a string.
func WriteEvent(w *bufio.Writer, e Event) error {
	if e.Resumed {
		w.WriteString(": resumed from the chain after falling behind\n")
	}
	b, err := json.Marshal(e.Row())
	if err != nil {
		return err
	}
	w.WriteString("id: ")
	w.WriteString(strconv.FormatUint(e.Record.Seq, 10))
	w.WriteString("\nevent: row\ndata: ")
	w.Write(b)
	_, err = w.WriteString("\n\n")
	return err
}

// Serve writes st to w as Server-Sent Events until st ends or the client
// goes away, with a ": ping" comment after every heartbeat of silence.
// The headers are sent at once, so the client knows it is subscribed.
func Serve(w http.ResponseWriter, r *http.Request, st *Stream, heartbeat time.Duration) error {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	bw := bufio.NewWriterSize(w, 32<<10)
	flush := func() error {
		if err := bw.Flush(); err != nil {
			return err
		}
		return rc.Flush()
	}
	if err := flush(); err != nil {
		return nil
	}
	tick := time.NewTicker(heartbeat)
	defer tick.Stop()
	for {
		select {
		case e, ok := <-st.C:
			if !ok {
				if err := st.Err(); err != nil {
					bw.WriteString(": stream ended: " + strings.ReplaceAll(err.Error(), "\n", " ") + "\n\n")
				}
				flush()
				return nil
			}
			if err := WriteEvent(bw, e); err != nil {
				return nil
			}
			// Write what is already waiting before flushing: one
			// write per burst, not per row.
			for more := true; more && bw.Buffered() < 24<<10; {
				select {
				case e, ok := <-st.C:
					if !ok {
						more = false
						break
					}
					if err := WriteEvent(bw, e); err != nil {
						return nil
					}
				default:
					more = false
				}
			}
			if err := flush(); err != nil {
				return nil
			}
			tick.Reset(heartbeat)
		case <-tick.C:
			bw.WriteString(": ping\n\n")
			if err := flush(); err != nil {
				return nil
			}
		case <-r.Context().Done():
			return nil
		}
	}
}
