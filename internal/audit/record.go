package audit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"
)

// Record is one row of the audit chain. The JSON field names are the
// "audit row" contract of cli.md.
type Record struct {
	Seq    uint64            `json:"seq"`
	Time   time.Time         `json:"time"` // RFC 3339, nine fraction digits, UTC
	AID    uint64            `json:"aid"`
	Type   string            `json:"type"` // "agent.spawn", "chain.truncated", ...
	Cap    string            `json:"cap"`
	Object string            `json:"object"`
	Result string            `json:"result"` // "allow", "deny", or "" for events that decide nothing
	Errno  int               `json:"errno"`
	PID    int               `json:"pid"`
	KSeq   uint64            `json:"kseq"`
	Detail map[string]string `json:"detail,omitempty"`
	Hash   string            `json:"hash"` // hex chain head after this record
}

// Result values.
const (
	ResultAllow = "allow"
	ResultDeny  = "deny"
)

// timeLayout is the canonical time form: always nine fraction digits and a
// literal Z, so one instant has exactly one spelling.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

// maxSeqPrefix is len(`{"seq":18446744073709551615,`).
const maxSeqPrefix = 29

// RecordBytes returns the canonical bytes of r that the chain hashes and
// stores: r without Hash, as doc.go defines.
func RecordBytes(r Record) ([]byte, error) {
	if len(r.Detail) == 0 {
		r.Detail = nil
	}
	if err := validate(&r); err != nil {
		return nil, err
	}
	return appendRecord(make([]byte, 0, 256), &r), nil
}

// encodeBody encodes everything but seq (see appendBody). Appenders call it
// in their own goroutine so the single writer only has to prefix the seq.
func encodeBody(r *Record) []byte { return appendBody(make([]byte, 0, 224), r) }

// appendPayload appends `{"seq":N` and the body that follows it.
func appendPayload(dst []byte, seq uint64, body []byte) []byte {
	dst = append(dst, `{"seq":`...)
	dst = strconv.AppendUint(dst, seq, 10)
	return append(dst, body...)
}

// validate rejects what the chain must not store: anything that would not
// survive a canonical round trip, and results outside the vocabulary.
func validate(r *Record) error {
	if r.Type == "" {
		return fmt.Errorf("%w: empty type", ErrInvalidRecord)
	}
	switch r.Result {
	case "", ResultAllow, ResultDeny:
	default:
		return fmt.Errorf("%w: result %q is not allow or deny", ErrInvalidRecord, r.Result)
	}
	if y := r.Time.UTC().Year(); y < 1 || y > 9999 {
		return fmt.Errorf("%w: time year %d out of range", ErrInvalidRecord, y)
	}
	for _, f := range [...]struct{ name, s string }{{"type", r.Type}, {"cap", r.Cap}, {"object", r.Object}} {
		if !utf8.ValidString(f.s) {
			return fmt.Errorf("%w: %s is not valid UTF-8", ErrInvalidRecord, f.name)
		}
	}
	for k, v := range r.Detail {
		if k == "" || !utf8.ValidString(k) || !utf8.ValidString(v) {
			return fmt.Errorf("%w: detail key %q: empty or not valid UTF-8", ErrInvalidRecord, k)
		}
	}
	return nil
}

// DecodeRecord decodes canonical record bytes. It fails with ErrNonCanonical
// for anything that is not exactly what RecordBytes would produce (unknown or
// duplicate fields, other spacing, other time spelling, invalid UTF-8), so a
// record has one byte form and one hash.
func DecodeRecord(payload []byte) (Record, error) {
	r, err := parseRecord(payload)
	if err != nil {
		return Record{}, fmt.Errorf("%w: %v", ErrNonCanonical, err)
	}
	if err := validate(&r); err != nil {
		return Record{}, fmt.Errorf("%w: %v", ErrNonCanonical, err)
	}
	if !canonicalAgain(&r, payload) {
		return Record{}, ErrNonCanonical
	}
	return r, nil
}

// canonicalAgain re-encodes r into a stack buffer (most records fit) and
// compares it with payload.
func canonicalAgain(r *Record, payload []byte) bool {
	var small [512]byte
	return bytes.Equal(appendRecord(small[:0], r), payload)
}

// peekSeq reads the seq of canonical record bytes without decoding them, so
// scans can skip records cheaply. ok is false if the prefix is not canonical.
func peekSeq(payload []byte) (seq uint64, ok bool) {
	const prefix = `{"seq":`
	if !bytes.HasPrefix(payload, []byte(prefix)) {
		return 0, false
	}
	rest := payload[len(prefix):]
	end := bytes.IndexByte(rest, ',')
	if end <= 0 || end > 20 {
		return 0, false
	}
	seq, err := strconv.ParseUint(string(rest[:end]), 10, 64)
	if err != nil {
		return 0, false
	}
	return seq, true
}

// peekAID reads the aid of canonical record bytes, which follows the seq
// and the fixed-width time: `{"seq":N,"time":"<30 bytes>","aid":N,`.
func peekAID(payload []byte) (uint64, bool) {
	i := bytes.IndexByte(payload, ',')
	const mid = `,"time":"` + "123456789012345678901234567890" + `","aid":`
	if i < 0 || len(payload) < i+len(mid) || string(payload[i:i+9]) != mid[:9] || string(payload[i+39:i+len(mid)]) != mid[39:] {
		return 0, false
	}
	rest := payload[i+len(mid):]
	end := bytes.IndexByte(rest, ',')
	if end <= 0 || end > 20 {
		return 0, false
	}
	aid, err := strconv.ParseUint(string(rest[:end]), 10, 64)
	return aid, err == nil
}

// MarshalJSON writes the audit row: the canonical record plus "hash".
func (r Record) MarshalJSON() ([]byte, error) {
	b, err := RecordBytes(r)
	if err != nil {
		return nil, err
	}
	b = b[:len(b)-1]
	b = append(b, `,"hash":`...)
	b = appendString(b, r.Hash)
	return append(b, '}'), nil
}

// UnmarshalJSON reads an audit row. It accepts any RFC 3339 time; only
// DecodeRecord insists on canonical bytes.
func (r *Record) UnmarshalJSON(b []byte) error {
	// plain is Record without its methods; the outer Time (a string, any
	// RFC 3339 spelling) shadows plain's for "time".
	type plain Record
	var w struct {
		plain
		Time string `json:"time"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	t, err := time.Parse(time.RFC3339Nano, w.Time)
	if err != nil {
		return fmt.Errorf("audit row time: %w", err)
	}
	*r = Record(w.plain)
	r.Time = t.UTC()
	return nil
}
