package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/coconut-os/coconut/api"
)

// EventFilter narrows an event stream. Zero fields match everything.
type EventFilter struct {
	AID    *uint64 // only this agent's rows (0: the daemon's own, root only)
	Type   string  // exact, or a prefix ending in "*" ("cap.*")
	Result string  // "", "allow" or "deny"
}

func (f EventFilter) values(since uint64) url.Values {
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

// Events subscribes to the daemon's event stream (GET /v1/events): the audit
// rows the caller may see with seq > since, then the rows appended from now
// on. Read it with Next until it returns false; Err says why it ended (nil
// when ctx ended). A bad filter or an agent the caller may not see is an
// error here, before any row.
func (c *Client) Events(ctx context.Context, since uint64, f EventFilter) (*EventStream, error) {
	resp, err := c.send(ctx, http.MethodGet, "/events", f.values(since), nil)
	if err != nil {
		return nil, err
	}
	return &EventStream{ctx: ctx, body: resp.Body, sse: newSSEReader(resp.Body), Last: since}, nil
}

// EventStream is a subscription to the event stream.
type EventStream struct {
	// Last is the seq of the last row Next returned (since, before any):
	// where to subscribe again after a disconnect so nothing is lost or
	// repeated.
	Last uint64

	ctx  context.Context
	body io.ReadCloser
	sse  *sseReader
	rec  api.Record
	err  error
}

// Next waits for the next row; false when the stream has ended.
func (s *EventStream) Next() bool {
	if s.err != nil {
		return false
	}
	for {
		ev, err := s.sse.next()
		if err != nil {
			switch {
			case s.ctx.Err() != nil:
				s.err = io.EOF
			case errors.Is(err, io.EOF):
				s.err = fmt.Errorf("event stream: coconutd closed it after seq %d", s.Last)
			default:
				s.err = fmt.Errorf("event stream after seq %d: %w", s.Last, err)
			}
			return false
		}
		if ev.event != "row" {
			continue // an event type this client does not know yet
		}
		var r api.Record
		if err := json.Unmarshal(ev.data, &r); err != nil {
			s.err = fmt.Errorf("event stream: row after seq %d: %w", s.Last, err)
			return false
		}
		if r.Seq <= s.Last {
			s.err = fmt.Errorf("event stream: row %d after row %d: out of order", r.Seq, s.Last)
			return false
		}
		s.rec, s.Last = r, r.Seq
		return true
	}
}

// Record is the row Next moved to.
func (s *EventStream) Record() api.Record { return s.rec }

// Err is why Next returned false: nil when the context ended.
func (s *EventStream) Err() error {
	if errors.Is(s.err, io.EOF) {
		return nil
	}
	return s.err
}

// Close ends the subscription.
func (s *EventStream) Close() error {
	if s.err == nil {
		s.err = io.EOF
	}
	return s.body.Close()
}

// maxSSELine bounds one line of the stream (a row is far smaller).
const maxSSELine = 1 << 20

// sseEvent is one dispatched Server-Sent Event.
type sseEvent struct {
	id, event string
	data      []byte
}

// sseReader parses text/event-stream (the WHATWG HTML "server-sent events"
// grammar): fields per line, a blank line dispatches, ":" starts a comment.
type sseReader struct{ r *bufio.Reader }

func newSSEReader(r io.Reader) *sseReader { return &sseReader{bufio.NewReaderSize(r, 64<<10)} }

func (p *sseReader) line() ([]byte, error) {
	var out []byte
	for {
		b, err := p.r.ReadSlice('\n')
		out = append(out, b...)
		if len(out) > maxSSELine {
			return nil, fmt.Errorf("line over %d bytes", maxSSELine)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = out[:len(out)-1]
		if n := len(out); n > 0 && out[n-1] == '\r' {
			out = out[:n-1]
		}
		return out, nil
	}
}

func (p *sseReader) next() (sseEvent, error) {
	var ev sseEvent
	have := false
	for {
		l, err := p.line()
		if err != nil {
			return sseEvent{}, err
		}
		if len(l) == 0 {
			if have {
				if ev.event == "" {
					ev.event = "message"
				}
				return ev, nil
			}
			continue
		}
		if l[0] == ':' {
			continue
		}
		name, val := l, []byte(nil)
		for i, c := range l {
			if c == ':' {
				name, val = l[:i], l[i+1:]
				if len(val) > 0 && val[0] == ' ' {
					val = val[1:]
				}
				break
			}
		}
		switch string(name) {
		case "data":
			if have && ev.data != nil {
				ev.data = append(ev.data, '\n')
			}
			ev.data = append(ev.data, val...)
			if len(ev.data) > maxSSELine {
				return sseEvent{}, fmt.Errorf("event over %d bytes", maxSSELine)
			}
			if ev.data == nil {
				ev.data = []byte{}
			}
		case "event":
			ev.event = string(val)
		case "id":
			ev.id = string(val)
		default:
			continue // retry and unknown fields: ignored
		}
		have = true
	}
}

// SocketPath is the socket the client dials: Socket, else $COCONUT_SOCKET,
// else DefaultSocket.
func (c *Client) SocketPath() string { return c.socket() }
