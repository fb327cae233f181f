package events

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/coconut-os/coconut/api"
	"github.com/coconut-os/coconut/internal/agent"
	"github.com/coconut-os/coconut/internal/audit"
)

// Buffer is how many events a stream holds for its consumer before the
// consumer's slowness reaches the chain (which then drops the follower and
// the stream resumes from the chain).
const Buffer = 256

// Visibility decides which rows a caller may see: agent.Manager.SeesRow.
type Visibility interface {
	SeesRow(c agent.Caller, aid uint64) bool
}

// Filter narrows the stream. Zero fields match everything.
type Filter struct {
	AID *uint64 // only rows of this agent (0: the daemon's own rows)
	// Type matches exactly, or as a prefix when it ends in "*" ("cap.*").
	Type   string
	Result string // "", audit.ResultAllow or audit.ResultDeny
}

// Check reports a filter the stream would refuse, as an api.ErrInvalid.
func (f Filter) Check() error {
	if i := strings.IndexByte(f.Type, '*'); i >= 0 && i != len(f.Type)-1 {
		return api.Errorf(api.ErrInvalid, "type %q: '*' only at the end", f.Type)
	}
	if f.Result != "" && f.Result != audit.ResultAllow && f.Result != audit.ResultDeny {
		return api.Errorf(api.ErrInvalid, "result %q: must be allow or deny", f.Result)
	}
	return nil
}

func (f Filter) query(after uint64) audit.Query {
	return audit.Query{AID: f.AID, Type: f.Type, Result: f.Result, AfterSeq: after}
}

// Event is one row of the stream.
type Event struct {
	Record audit.Record
	// Resumed is set on the first event after the consumer fell behind
	// far enough that the chain dropped its follower and the stream read
	// on from the chain by sequence: nothing was lost or repeated, but a
	// consumer that counts rates may want to know.
	Resumed bool
}

// Row is the event's wire form, the object `coconut audit query --json`
// prints for one row.
func (e Event) Row() api.Record { return Row(e.Record) }

// Row converts an audit record to its wire form.
func Row(r audit.Record) api.Record {
	return api.Record{Seq: r.Seq, Time: r.Time, AID: r.AID, Type: r.Type, Cap: r.Cap, Object: r.Object,
		Result: r.Result, Errno: r.Errno, PID: r.PID, KSeq: r.KSeq, Detail: r.Detail, Hash: r.Hash}
}

// Service serves event streams off one chain.
type Service struct {
	chain *audit.Chain
	vis   Visibility
}

// New returns the service for chain, deciding visibility with vis.
func New(chain *audit.Chain, vis Visibility) *Service { return &Service{chain: chain, vis: vis} }

// Stream is one subscription. C is closed when the context ends, the chain
// closes, or reading the chain fails; Err then says which (nil for the
// first two).
type Stream struct {
	C   <-chan Event
	err error // written before C is closed
}

// Err is why C was closed: nil when the context ended or the chain closed.
// Valid only after C is closed.
func (s *Stream) Err() error { return s.err }

// Subscribe streams the rows after since that c may see and f matches,
// then the rows appended from now on, until ctx ends. A filter on an agent
// c may not see is api.ErrNotFound, as for the audit query.
func (s *Service) Subscribe(ctx context.Context, c agent.Caller, since uint64, f Filter) (*Stream, error) {
	if err := f.Check(); err != nil {
		return nil, err
	}
	if f.AID != nil && !s.vis.SeesRow(c, *f.AID) {
		if *f.AID == 0 {
			return nil, api.Errorf(api.ErrNotFound, "the daemon's own rows (aid 0) are root's")
		}
		return nil, api.Errorf(api.ErrNotFound, "no agent %d", *f.AID)
	}
	src, err := s.chain.Follow(ctx, f.query(since))
	if err != nil {
		return nil, follow(err)
	}
	out := make(chan Event, Buffer)
	st := &Stream{C: out}
	go func() {
		defer close(out)
		st.err = s.pump(ctx, c, f, since, src, out)
	}()
	return st, nil
}

func follow(err error) error {
	switch {
	case errors.Is(err, audit.ErrBadQuery):
		return api.Errorf(api.ErrInvalid, "%v", err)
	case errors.Is(err, audit.ErrClosed):
		return api.Errorf(api.ErrUnavailable, "the audit chain is closed")
	}
	return api.Errorf(api.ErrUnavailable, "follow the audit chain: %v", err)
}

// pump forwards src to out, keeping the rows c may see. When the chain
// drops the follower (src closes while ctx lives) it follows again after
// the last row it read, which is gapless because the chain hands over
// exactly the buffered prefix before closing.
func (s *Service) pump(ctx context.Context, c agent.Caller, f Filter, last uint64, src <-chan audit.Record, out chan<- Event) error {
	resumed := false
	for {
		got := 0
		for r := range src {
			got++
			last = r.Seq
			if !s.vis.SeesRow(c, r.AID) {
				continue
			}
			select {
			case out <- Event{Record: r, Resumed: resumed}:
				resumed = false
			case <-ctx.Done():
				return nil
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		if got == 0 {
			// A follower is only dropped with a full buffer, so a close
			// with nothing read is the chain closing or failing a read.
			if s.closed(ctx) {
				return nil
			}
			return fmt.Errorf("read the audit chain after seq %d: the follower ended without a row", last)
		}
		var err error
		if src, err = s.chain.Follow(ctx, f.query(last)); err != nil {
			if errors.Is(err, audit.ErrClosed) {
				return nil
			}
			return follow(err)
		}
		resumed = true
	}
}

// closed reports whether the chain is closed, by trying to follow it.
func (s *Service) closed(ctx context.Context) bool {
	probe, cancel := context.WithCancel(ctx)
	defer cancel()
	_, err := s.chain.Follow(probe, audit.Query{AfterSeq: ^uint64(0)})
	return errors.Is(err, audit.ErrClosed)
}
