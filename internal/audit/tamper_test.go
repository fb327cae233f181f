package audit

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestTamper alters a 10-record, one-segment chain on disk and checks that
// Verify and Open name the first bad seq.
func TestTamper(t *testing.T) {
	tests := []struct {
		name    string
		tamper  func(t *testing.T, b []byte, fs []frameSpan) []byte
		wantSeq uint64
		wantErr error
		msg     string
	}{
		{
			name: "flip a byte",
			tamper: func(t *testing.T, b []byte, fs []frameSpan) []byte {
				b[fs[4].off+30] ^= 0x01
				return b
			},
			wantSeq: 5, wantErr: ErrFrameCRC, msg: "seq 5: ",
		},
		{
			name: "alter a field and fix the crc",
			tamper: func(t *testing.T, b []byte, fs []frameSpan) []byte {
				frame := b[fs[6].off:fs[6].end]
				i := bytes.Index(frame, []byte(`"pid":4006`))
				if i < 0 {
					t.Fatal("pid not found")
				}
				frame[i+len(`"pid":400`)] = '7'
				refreshCRC(b, fs[6].off)
				return b
			},
			wantSeq: 7, wantErr: ErrHashMismatch, msg: "seq 7: hash mismatch: record altered or reordered",
		},
		{
			name: "break canonical form and fix the crc",
			tamper: func(t *testing.T, b []byte, fs []frameSpan) []byte {
				frame := b[fs[2].off:fs[2].end]
				i := bytes.Index(frame, []byte(`"aid":`))
				frame[i+len(`"aid"`)] = ' ' // `"aid" 102` is not JSON
				refreshCRC(b, fs[2].off)
				return b
			},
			wantSeq: 3, wantErr: ErrNonCanonical, msg: "seq 3: ",
		},
		{
			name: "delete a frame",
			tamper: func(t *testing.T, b []byte, fs []frameSpan) []byte {
				return append(b[:fs[3].off:fs[3].off], b[fs[3].end:]...)
			},
			wantSeq: 4, wantErr: ErrSeqMissing, msg: "seq 4: missing (seq 3 followed by 5)",
		},
		{
			name: "swap two frames",
			tamper: func(t *testing.T, b []byte, fs []frameSpan) []byte {
				out := append([]byte(nil), b[:fs[4].off]...)
				out = append(out, b[fs[5].off:fs[5].end]...)
				out = append(out, b[fs[4].off:fs[4].end]...)
				return append(out, b[fs[5].end:]...)
			},
			wantSeq: 5, wantErr: ErrSeqMissing, msg: "seq 5: missing (seq 4 followed by 6)",
		},
		{
			name: "swap two frames and renumber",
			tamper: func(t *testing.T, b []byte, fs []frameSpan) []byte {
				f4 := bytes.Replace(b[fs[4].off:fs[4].end], []byte(`"seq":5,`), []byte(`"seq":6,`), 1)
				f5 := bytes.Replace(b[fs[5].off:fs[5].end], []byte(`"seq":6,`), []byte(`"seq":5,`), 1)
				out := append([]byte(nil), b[:fs[4].off]...)
				out = append(out, f5...)
				out = append(out, f4...)
				out = append(out, b[fs[5].end:]...)
				refreshCRC(out, fs[4].off)
				refreshCRC(out, fs[4].off+int64(len(f5)))
				return out
			},
			wantSeq: 5, wantErr: ErrHashMismatch, msg: "seq 5: hash mismatch",
		},
		{
			name: "duplicate a frame",
			tamper: func(t *testing.T, b []byte, fs []frameSpan) []byte {
				out := append([]byte(nil), b[:fs[2].end]...)
				out = append(out, b[fs[2].off:fs[2].end]...)
				return append(out, b[fs[2].end:]...)
			},
			wantSeq: 4, wantErr: ErrSeqOrder, msg: "seq 4: out of order (seq 3 followed by 3)",
		},
		{
			name: "garbage length in the middle",
			tamper: func(t *testing.T, b []byte, fs []frameSpan) []byte {
				copy(b[fs[8].off:], []byte{0xff, 0xff, 0xff, 0xff})
				return b
			},
			wantSeq: 9, wantErr: ErrFrameLength, msg: "seq 9: ",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			c := openT(t, dir, Options{})
			fill(t, c, 10)
			c.Close()
			path := segPaths(t, dir)[0]
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			b = tt.tamper(t, b, frames(t, path))
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}

			rep, err := Verify(dir)
			if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("Verify = %v, want %v containing %q", err, tt.wantErr, tt.msg)
			}
			if rep.FirstBad != tt.wantSeq || rep.Records != tt.wantSeq-1 || rep.Reason != err.Error() {
				t.Fatalf("report %+v, want first bad %d", rep, tt.wantSeq)
			}
			_, err = Open(dir, Options{})
			var se *SeqError
			if !errors.As(err, &se) || se.Seq != tt.wantSeq || !errors.Is(err, tt.wantErr) {
				t.Fatalf("Open = %v, want seq %d %v", err, tt.wantSeq, tt.wantErr)
			}
		})
	}
}

// TestTornTail covers what a crash during a write leaves at the end of the
// last segment: Open cuts it and records the cut, and the result verifies.
func TestTornTail(t *testing.T) {
	tests := []struct {
		name   string
		tamper func(b []byte, last frameSpan) []byte
	}{
		{"cut mid frame", func(b []byte, last frameSpan) []byte { return b[:last.off+20] }},
		{"cut in length", func(b []byte, last frameSpan) []byte { return b[:last.off+2] }},
		{"cut in crc", func(b []byte, last frameSpan) []byte { return b[:last.end-1] }},
		{"bad crc at end", func(b []byte, last frameSpan) []byte { b[last.end-1] ^= 0xff; return b }},
		{"zeros at end", func(b []byte, _ frameSpan) []byte { return append(b, make([]byte, 4096)...) }},
		{"partial then zeros", func(b []byte, last frameSpan) []byte {
			return append(b[:last.off+50], make([]byte, 500)...)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			c := openT(t, dir, Options{SegmentBytes: 2000})
			recs := fill(t, c, 12)
			c.Close()
			paths := segPaths(t, dir)
			path := paths[len(paths)-1]
			fs := frames(t, path)
			last := fs[len(fs)-1]
			b, _ := os.ReadFile(path)
			orig := int64(len(b))
			b = tt.tamper(b, last)
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := Verify(dir); !errors.Is(err, ErrTornTail) {
				t.Fatalf("Verify before Open = %v, want ErrTornTail", err)
			}

			c = openT(t, dir, Options{})
			defer c.Close()
			// The cut record is gone unless only zeros were appended.
			kept := uint64(12)
			cutAt := last.off
			if tt.name == "zeros at end" {
				cutAt = orig
			} else {
				kept = 11
			}
			got, err := c.Query(Query{AfterSeq: kept})
			if err != nil || len(got) != 1 {
				t.Fatalf("after open: %v %v", got, err)
			}
			tr := got[0]
			if tr.Type != TypeTruncated || tr.Seq != kept+1 || tr.Detail["bytes"] != itoa(int64(len(b))-cutAt) || tr.Detail["offset"] != itoa(cutAt) {
				t.Fatalf("truncation record %+v (cut at %d of %d)", tr, cutAt, len(b))
			}
			if _, h := c.Head(); h != tr.Hash {
				t.Fatalf("head %s, want %s", h, tr.Hash)
			}
			if r, err := c.Append(context.Background(), rec(99)); err != nil || r.Seq != kept+2 {
				t.Fatalf("append after cut: %+v %v", r, err)
			}
			c.Close()
			rep, err := Verify(dir)
			if err != nil || rep.Records != kept+2 {
				t.Fatalf("Verify after cut = %+v, %v", rep, err)
			}
			if kept == 11 {
				all, _ := Open(dir, Options{VerifyAll: true})
				rs, _ := all.Query(Query{AfterSeq: 10, Limit: 1})
				all.Close()
				if len(rs) != 1 || rs[0].Hash != recs[10].Hash {
					t.Fatalf("record 11 changed: %+v", rs)
				}
			}
		})
	}
}

// A bad record in an earlier segment is invisible to the fast Open (only
// the last segment is checked), but VerifyAll and Verify name it.
func TestEarlierSegmentCorruption(t *testing.T) {
	dir := t.TempDir()
	c := openT(t, dir, Options{SegmentBytes: 1500})
	fill(t, c, 20)
	c.Close()
	paths := segPaths(t, dir)
	if len(paths) < 3 {
		t.Fatalf("want several segments, got %d", len(paths))
	}
	fs := frames(t, paths[1])
	b, _ := os.ReadFile(paths[1])
	b[fs[0].off+25] ^= 0x20
	os.WriteFile(paths[1], b, 0o600)

	c, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("fast Open: %v", err)
	}
	c.Close()
	_, err = Open(dir, Options{VerifyAll: true})
	var se *SeqError
	if !errors.As(err, &se) || se.Seq != fs[0].seq {
		t.Fatalf("Open VerifyAll = %v, want seq %d", err, fs[0].seq)
	}
	rep, err := Verify(dir)
	if err == nil || rep.FirstBad != fs[0].seq {
		t.Fatalf("Verify = %+v %v", rep, err)
	}
}

func TestSegmentTamper(t *testing.T) {
	tests := []struct {
		name    string
		tamper  func(t *testing.T, paths []string)
		wantErr error
	}{
		{"delete a middle segment", func(t *testing.T, p []string) { os.Remove(p[1]) }, ErrSeqMissing},
		{"rename a segment", func(t *testing.T, p []string) {
			first, _ := parseSegName(filepath.Base(p[1]))
			os.Rename(p[1], filepath.Join(filepath.Dir(p[1]), segName(first+1)))
		}, ErrBadHeader},
		{"replace a header", func(t *testing.T, p []string) {
			b, _ := os.ReadFile(p[1])
			h, _ := parseHeader(b[:HeaderSize])
			h.PrevHead[0] ^= 1
			copy(b, appendHeader(nil, h))
			os.WriteFile(p[1], b, 0o600)
		}, ErrHashMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			c := openT(t, dir, Options{SegmentBytes: 1500})
			fill(t, c, 20)
			c.Close()
			tt.tamper(t, segPaths(t, dir))
			if _, err := Verify(dir); !errors.Is(err, tt.wantErr) {
				t.Fatalf("Verify = %v, want %v", err, tt.wantErr)
			}
			if _, err := Open(dir, Options{VerifyAll: true}); !errors.Is(err, tt.wantErr) {
				t.Fatalf("Open VerifyAll = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
