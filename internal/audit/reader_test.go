package audit

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

// segmentBytes builds a valid segment holding records rec(0..n-1).
func segmentBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := appendHeader(nil, SegmentHeader{FirstSeq: 1, PrevHead: Genesis})
	head := Genesis
	for i := range n {
		r := rec(i)
		r.Seq = uint64(i + 1)
		p, err := RecordBytes(r)
		if err != nil {
			t.Fatal(err)
		}
		head = NextHead(head, p)
		b = appendFrame(b, p, head)
	}
	return b
}

func TestReaderFrames(t *testing.T) {
	b := segmentBytes(t, 3)
	rd, err := NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if h := rd.Header(); h.FirstSeq != 1 || h.PrevHead != Genesis {
		t.Fatalf("header %+v", h)
	}
	l := linker{head: Genesis}
	for i := range 3 {
		f, err := rd.Next()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if err := l.add(f); err != nil || l.seq != uint64(i+1) {
			t.Fatalf("link frame %d: %v at seq %d", i, err, l.seq)
		}
	}
	if _, err := rd.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("end: %v", err)
	}
	if rd.Offset() != int64(len(b)) {
		t.Fatalf("offset %d, want %d", rd.Offset(), len(b))
	}
}

func TestReaderFaults(t *testing.T) {
	good := segmentBytes(t, 2)
	firstLen := int(binary.LittleEndian.Uint32(good[HeaderSize:]))
	mut := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	tests := []struct {
		name      string
		in        []byte
		headerErr error
		frameErr  error
	}{
		{"empty", nil, ErrBadHeader, nil},
		{"short header", good[:HeaderSize-1], ErrBadHeader, nil},
		{"bad magic", mut(func(b []byte) []byte { b[0] = 'X'; return b }), ErrBadHeader, nil},
		{"header crc", mut(func(b []byte) []byte { b[20] ^= 1; return b }), ErrBadHeader, nil},
		{"torn length", good[:HeaderSize+2], nil, ErrTornFrame},
		{"torn payload", good[:HeaderSize+10], nil, ErrTornFrame},
		{"torn crc", good[:HeaderSize+4+firstLen+HeadSize+1], nil, ErrTornFrame},
		{"zero length", mut(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[HeaderSize:], 0); return b }), nil, ErrFrameLength},
		{"huge length", mut(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[HeaderSize:], MaxPayload+1); return b }), nil, ErrFrameLength},
		{"payload flip", mut(func(b []byte) []byte { b[HeaderSize+10] ^= 1; return b }), nil, ErrFrameCRC},
		{"head flip", mut(func(b []byte) []byte { b[HeaderSize+4+firstLen] ^= 1; return b }), nil, ErrFrameCRC},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rd, err := NewReader(bytes.NewReader(tt.in))
			if tt.headerErr != nil {
				if !errors.Is(err, tt.headerErr) {
					t.Fatalf("NewReader = %v, want %v", err, tt.headerErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			_, err = rd.Next()
			var fe *FrameError
			if !errors.Is(err, tt.frameErr) || !errors.As(err, &fe) || fe.Offset != HeaderSize {
				t.Fatalf("Next = %v, want %v at offset %d", err, tt.frameErr, HeaderSize)
			}
			if _, again := rd.Next(); again != err {
				t.Fatalf("error not sticky: %v", again)
			}
		})
	}
}

// FuzzReader feeds arbitrary bytes as a segment file: the reader and the
// linker must never panic, and must either accept a valid chain or error.
func FuzzReader(f *testing.F) {
	f.Add(segmentBytes(f, 3))
	f.Add(segmentBytes(f, 1)[:HeaderSize+7])
	f.Add(appendHeader(nil, SegmentHeader{FirstSeq: 1}))
	f.Add([]byte("COCOAUD1"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rd, err := NewReader(bytes.NewReader(data))
		if err != nil {
			return
		}
		h := rd.Header()
		l := linker{seq: h.FirstSeq - 1, head: h.PrevHead}
		for {
			fr, err := rd.Next()
			if errors.Is(err, io.EOF) {
				if rd.Offset() != int64(len(data)) {
					t.Fatalf("clean end at %d of %d bytes", rd.Offset(), len(data))
				}
				return
			}
			if err != nil {
				return
			}
			if err := l.add(fr); err != nil {
				return
			}
			// What the linker's allocation-free check accepted, DecodeRecord does.
			r, err := DecodeRecord(fr.Payload)
			if err != nil || r.Seq != l.seq || fr.Head != l.head {
				t.Fatalf("linker accepted %+v (%v) at seq %d", r, err, l.seq)
			}
		}
	})
}
