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

// TypeTruncated is the record Open appends after cutting a torn tail.
const TypeTruncated = "chain.truncated"

// timeLayout is the canonical time form: always nine fraction digits and a
// literal Z, so one instant has exactly one spelling.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

// wireBody is the canonical record minus seq. Field order is the canonical
// order; encoding/json keeps struct order and sorts map keys.
type wireBody struct {
	Time   string            `json:"time"`
	AID    uint64            `json:"aid"`
	Type   string            `json:"type"`
	Cap    string            `json:"cap"`
	Object string            `json:"object"`
	Result string            `json:"result"`
	Errno  int               `json:"errno"`
	PID    int               `json:"pid"`
	KSeq   uint64            `json:"kseq"`
	Detail map[string]string `json:"detail,omitempty"`
}

// wireRecord is what a stored payload decodes into.
type wireRecord struct {
	Seq    uint64            `json:"seq"`
	Time   string            `json:"time"`
	AID    uint64            `json:"aid"`
	Type   string            `json:"type"`
	Cap    string            `json:"cap"`
	Object string            `json:"object"`
	Result string            `json:"result"`
	Errno  int               `json:"errno"`
	PID    int               `json:"pid"`
	KSeq   uint64            `json:"kseq"`
	Detail map[string]string `json:"detail,omitempty"`
	Hash   string            `json:"hash,omitempty"`
}

// maxSeqPrefix is len(`{"seq":18446744073709551615,`).
const maxSeqPrefix = 29

// RecordBytes returns the canonical bytes of r that the chain hashes and
// stores: r without Hash, as doc.go defines.
func RecordBytes(r Record) ([]byte, error) {
	body, err := encodeBody(r)
	if err != nil {
		return nil, err
	}
	return appendPayload(nil, r.Seq, body), nil
}

// encodeBody encodes everything but seq. Appenders call it in their own
// goroutine so the single writer only has to prefix the seq.
func encodeBody(r Record) ([]byte, error) {
	w := wireBody{
		Time: r.Time.UTC().Format(timeLayout), AID: r.AID, Type: r.Type,
		Cap: r.Cap, Object: r.Object, Result: r.Result, Errno: r.Errno,
		PID: r.PID, KSeq: r.KSeq, Detail: r.Detail,
	}
	if len(w.Detail) == 0 {
		w.Detail = nil
	}
	b, err := json.Marshal(w)
	if err != nil {
		return nil, fmt.Errorf("encode record: %w", err)
	}
	return b, nil
}

// appendPayload appends `{"seq":N,` and body without its opening brace.
func appendPayload(dst []byte, seq uint64, body []byte) []byte {
	dst = append(dst, `{"seq":`...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, ',')
	return append(dst, body[1:]...)
}

// validate rejects what the chain must not store: anything that would not
// survive a canonical round trip, and results outside the vocabulary.
func validate(r Record) error {
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
	for name, s := range map[string]string{"type": r.Type, "cap": r.Cap, "object": r.Object} {
		if !utf8.ValidString(s) {
			return fmt.Errorf("%w: %s is not valid UTF-8", ErrInvalidRecord, name)
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
	var w wireRecord
	if err := json.Unmarshal(payload, &w); err != nil {
		return Record{}, fmt.Errorf("%w: %v", ErrNonCanonical, err)
	}
	if w.Hash != "" {
		return Record{}, fmt.Errorf("%w: stored record carries a hash", ErrNonCanonical)
	}
	t, err := time.Parse(timeLayout, w.Time)
	if err != nil {
		return Record{}, fmt.Errorf("%w: time: %v", ErrNonCanonical, err)
	}
	r := Record{
		Seq: w.Seq, Time: t, AID: w.AID, Type: w.Type, Cap: w.Cap,
		Object: w.Object, Result: w.Result, Errno: w.Errno, PID: w.PID,
		KSeq: w.KSeq, Detail: w.Detail,
	}
	if len(r.Detail) == 0 {
		r.Detail = nil
	}
	if err := validate(r); err != nil {
		return Record{}, fmt.Errorf("%w: %v", ErrNonCanonical, err)
	}
	again, err := RecordBytes(r)
	if err != nil {
		return Record{}, err
	}
	if !bytes.Equal(again, payload) {
		return Record{}, ErrNonCanonical
	}
	return r, nil
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

// MarshalJSON writes the audit row: the canonical record plus "hash".
func (r Record) MarshalJSON() ([]byte, error) {
	b, err := RecordBytes(r)
	if err != nil {
		return nil, err
	}
	b = b[:len(b)-1]
	b = append(b, `,"hash":`...)
	h, err := json.Marshal(r.Hash)
	if err != nil {
		return nil, err
	}
	b = append(b, h...)
	return append(b, '}'), nil
}

// UnmarshalJSON reads an audit row. It accepts any RFC 3339 time; only
// DecodeRecord insists on canonical bytes.
func (r *Record) UnmarshalJSON(b []byte) error {
	var w wireRecord
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	t, err := time.Parse(time.RFC3339Nano, w.Time)
	if err != nil {
		return fmt.Errorf("audit row time: %w", err)
	}
	*r = Record{
		Seq: w.Seq, Time: t.UTC(), AID: w.AID, Type: w.Type, Cap: w.Cap,
		Object: w.Object, Result: w.Result, Errno: w.Errno, PID: w.PID,
		KSeq: w.KSeq, Detail: w.Detail, Hash: w.Hash,
	}
	return nil
}
