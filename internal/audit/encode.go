package audit

import (
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// The canonical encoder is written by hand, without reflection: it runs
// once per appended record on the hot path, and DecodeRecord re-encodes
// every record it reads. Its output is byte for byte what encoding/json
// produced for the same fields (FuzzEncodeMatchesJSON keeps it so), which
// is the form docs/audit-format.md defines.

const hexDigits = "0123456789abcdef"

// appendBody appends r's canonical bytes without the leading `{"seq":N`:
// from `,"time":` to the closing brace. r must have passed validate.
func appendBody(dst []byte, r *Record) []byte {
	dst = append(dst, `,"time":"`...)
	dst = appendTime(dst, r.Time)
	dst = append(dst, `","aid":`...)
	dst = strconv.AppendUint(dst, r.AID, 10)
	dst = append(dst, `,"type":`...)
	dst = appendString(dst, r.Type)
	dst = append(dst, `,"cap":`...)
	dst = appendString(dst, r.Cap)
	dst = append(dst, `,"object":`...)
	dst = appendString(dst, r.Object)
	dst = append(dst, `,"result":`...)
	dst = appendString(dst, r.Result)
	dst = append(dst, `,"errno":`...)
	dst = strconv.AppendInt(dst, int64(r.Errno), 10)
	dst = append(dst, `,"pid":`...)
	dst = strconv.AppendInt(dst, int64(r.PID), 10)
	dst = append(dst, `,"kseq":`...)
	dst = strconv.AppendUint(dst, r.KSeq, 10)
	if len(r.Detail) > 0 {
		dst = append(dst, `,"detail":{`...)
		var small [16]string
		keys := small[:0]
		for k := range r.Detail {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, k)
			dst = append(dst, ':')
			dst = appendString(dst, r.Detail[k])
		}
		dst = append(dst, '}')
	}
	return append(dst, '}')
}

// appendRecord appends the whole canonical record: `{"seq":N` + body.
func appendRecord(dst []byte, r *Record) []byte {
	dst = append(dst, `{"seq":`...)
	dst = strconv.AppendUint(dst, r.Seq, 10)
	return appendBody(dst, r)
}

// appendTime writes t (UTC, year 1..9999) as timeLayout does:
// 2006-01-02T15:04:05.000000000Z.
func appendTime(dst []byte, t time.Time) []byte {
	t = t.UTC()
	y, mo, d := t.Date()
	h, mi, s := t.Clock()
	ns := t.Nanosecond()
	var b [30]byte
	put := func(at, v, width int) {
		for i := at + width - 1; i >= at; i-- {
			b[i] = byte('0' + v%10)
			v /= 10
		}
	}
	put(0, y, 4)
	b[4] = '-'
	put(5, int(mo), 2)
	b[7] = '-'
	put(8, d, 2)
	b[10] = 'T'
	put(11, h, 2)
	b[13] = ':'
	put(14, mi, 2)
	b[16] = ':'
	put(17, s, 2)
	b[19] = '.'
	put(20, ns, 9)
	b[29] = 'Z'
	return append(dst, b[:]...)
}

// appendString quotes s as encoding/json does with HTML escaping on. s must
// be valid UTF-8 (validate checks), but invalid bytes still come out as
// \ufffd, as encoding/json writes them.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' && b != '<' && b != '>' && b != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		if c == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		if c == '\u2028' || c == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[c&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
