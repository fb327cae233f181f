package audit

import (
	"bytes"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
	"unsafe"
)

// The decoder reads the fields in the one canonical order and layout and
// then re-encodes them: whatever it let through that is not exactly the
// canonical spelling (number forms, escapes, time, duplicate or unsorted
// detail keys) fails the byte comparison in DecodeRecord. It never
// allocates more than the record's own strings.

// errSyntax is wrapped into ErrNonCanonical with the offset.
var errSyntax = errors.New("unexpected bytes")

type decoder struct {
	b   []byte
	off int
	err error
	// view: strings without escapes alias b instead of being copied
	// (checkCanonical, whose record dies with the payload it reads).
	view bool
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: offset %d: %s", errSyntax, d.off, what)
	}
}

// lit consumes the literal s.
func (d *decoder) lit(s string) {
	if d.err != nil {
		return
	}
	if !bytes.HasPrefix(d.b[d.off:], []byte(s)) {
		d.fail("want " + s)
		return
	}
	d.off += len(s)
}

// uint reads decimal digits into a uint64, refusing overflow.
func (d *decoder) uint() uint64 {
	if d.err != nil {
		return 0
	}
	var v uint64
	start := d.off
	for d.off < len(d.b) && d.b[d.off] >= '0' && d.b[d.off] <= '9' && d.off-start < 20 {
		c := uint64(d.b[d.off] - '0')
		if v > (1<<64-1-c)/10 {
			d.fail("number overflows")
			return 0
		}
		v = v*10 + c
		d.off++
	}
	if d.off == start {
		d.fail("want a number")
	}
	return v
}

// int reads an optionally negative decimal that fits an int32 or larger
// int, as Record's int fields are.
func (d *decoder) int() int {
	neg := d.off < len(d.b) && d.b[d.off] == '-'
	if neg {
		d.off++
	}
	u := d.uint()
	const maxInt = uint64(1<<(strconvIntSize-1) - 1)
	if u > maxInt+1 || (!neg && u > maxInt) {
		d.fail("number overflows int")
		return 0
	}
	if neg {
		return int(-int64(u))
	}
	return int(u)
}

const strconvIntSize = 32 << (^uint(0) >> 63)

// str reads a JSON string with the escapes encoding/json writes.
func (d *decoder) str() string {
	if d.err != nil {
		return ""
	}
	if d.off >= len(d.b) || d.b[d.off] != '"' {
		d.fail("want a string")
		return ""
	}
	d.off++
	start := d.off
	// Fast path: no escapes.
	for d.off < len(d.b) {
		c := d.b[d.off]
		if c == '"' {
			var s string
			if d.view {
				s = unsafe.String(unsafe.SliceData(d.b[start:d.off]), d.off-start)
			} else {
				s = string(d.b[start:d.off])
			}
			d.off++
			return s
		}
		if c == '\\' {
			break
		}
		d.off++
	}
	out := append([]byte(nil), d.b[start:d.off]...)
	for d.off < len(d.b) {
		c := d.b[d.off]
		switch c {
		case '"':
			d.off++
			return string(out)
		case '\\':
			if d.off+1 >= len(d.b) {
				d.fail("short escape")
				return ""
			}
			e := d.b[d.off+1]
			d.off += 2
			switch e {
			case '"', '\\':
				out = append(out, e)
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				if d.off+4 > len(d.b) {
					d.fail("short \\u escape")
					return ""
				}
				var r rune
				for _, h := range d.b[d.off : d.off+4] {
					var v byte
					switch {
					case h >= '0' && h <= '9':
						v = h - '0'
					case h >= 'a' && h <= 'f':
						v = h - 'a' + 10
					default:
						d.fail("bad \\u escape")
						return ""
					}
					r = r<<4 | rune(v)
				}
				d.off += 4
				out = utf8.AppendRune(out, r)
			default:
				d.fail("bad escape")
				return ""
			}
		default:
			out = append(out, c)
			d.off++
		}
	}
	d.fail("unterminated string")
	return ""
}

// parseTime reads the fixed canonical layout; appendTime's round trip in
// DecodeRecord rejects out-of-range parts that time.Date would normalise.
func parseTime(s string) (time.Time, error) {
	if len(s) != 30 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' || s[19] != '.' || s[29] != 'Z' {
		return time.Time{}, fmt.Errorf("time %q not in layout %s", s, timeLayout)
	}
	num := func(from, to int) (int, bool) {
		v := 0
		for i := from; i < to; i++ {
			if s[i] < '0' || s[i] > '9' {
				return 0, false
			}
			v = v*10 + int(s[i]-'0')
		}
		return v, true
	}
	parts := [7][2]int{{0, 4}, {5, 7}, {8, 10}, {11, 13}, {14, 16}, {17, 19}, {20, 29}}
	var v [7]int
	for i, p := range parts {
		n, ok := num(p[0], p[1])
		if !ok {
			return time.Time{}, fmt.Errorf("time %q not in layout %s", s, timeLayout)
		}
		v[i] = n
	}
	return time.Date(v[0], time.Month(v[1]), v[2], v[3], v[4], v[5], v[6], time.UTC), nil
}

// parseRecord reads the canonical field sequence of payload.
func parseRecord(payload []byte) (Record, error) { return parseRecordView(payload, false) }

// checkCanonical is DecodeRecord's check without keeping the record: its
// strings alias payload, so nothing but the detail map is allocated.
func checkCanonical(payload []byte) error {
	r, err := parseRecordView(payload, true)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNonCanonical, err)
	}
	if err := validate(&r); err != nil {
		return fmt.Errorf("%w: %v", ErrNonCanonical, err)
	}
	if !canonicalAgain(&r, payload) {
		return ErrNonCanonical
	}
	return nil
}

func parseRecordView(payload []byte, view bool) (Record, error) {
	d := &decoder{b: payload, view: view}
	var r Record
	d.lit(`{"seq":`)
	r.Seq = d.uint()
	d.lit(`,"time":`)
	ts := d.str()
	d.lit(`,"aid":`)
	r.AID = d.uint()
	d.lit(`,"type":`)
	r.Type = d.str()
	d.lit(`,"cap":`)
	r.Cap = d.str()
	d.lit(`,"object":`)
	r.Object = d.str()
	d.lit(`,"result":`)
	r.Result = d.str()
	d.lit(`,"errno":`)
	r.Errno = d.int()
	d.lit(`,"pid":`)
	r.PID = d.int()
	d.lit(`,"kseq":`)
	r.KSeq = d.uint()
	if d.err == nil && bytes.HasPrefix(payload[d.off:], []byte(`,"detail":{`)) {
		d.off += len(`,"detail":{`)
		r.Detail = map[string]string{}
		for d.err == nil {
			k := d.str()
			d.lit(":")
			r.Detail[k] = d.str()
			if d.off < len(payload) && payload[d.off] == ',' {
				d.off++
				continue
			}
			d.lit("}")
			break
		}
	}
	d.lit("}")
	if d.err == nil && d.off != len(payload) {
		d.fail("trailing bytes")
	}
	if d.err != nil {
		return Record{}, d.err
	}
	t, err := parseTime(ts)
	if err != nil {
		return Record{}, err
	}
	r.Time = t
	return r, nil
}
