package audit

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// rec is a test record whose fields vary with i.
func rec(i int) Record {
	results := []string{ResultAllow, ResultDeny}
	types := []string{"agent.spawn", "agent.attest", "agent.state", "trust.add"}
	return Record{
		Time:   t0.Add(time.Duration(i) * time.Second),
		AID:    uint64(100 + i%3),
		Type:   types[i%len(types)],
		Cap:    fmt.Sprintf("fs.read:/data/%d", i%2),
		Object: fmt.Sprintf("/data/%d/file", i),
		Result: results[i%2],
		PID:    4000 + i,
		Detail: map[string]string{"i": fmt.Sprint(i)},
	}
}

func openT(t testing.TB, dir string, opts Options) *Chain {
	t.Helper()
	c, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return c
}

// fill appends n records rec(0..n-1).
func fill(t testing.TB, c *Chain, n int) []Record {
	t.Helper()
	out := make([]Record, n)
	for i := range n {
		r, err := c.Append(context.Background(), rec(i))
		if err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
		out[i] = r
	}
	return out
}

// frameSpan is where a frame lies in a segment file.
type frameSpan struct {
	off, end int64
	seq      uint64
}

func frames(t testing.TB, path string) []frameSpan {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rd, err := NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var out []frameSpan
	for {
		fr, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("frames: %v", err)
		}
		seq, _ := peekSeq(fr.Payload)
		out = append(out, frameSpan{off: fr.Offset, end: rd.Offset(), seq: seq})
	}
}

func segPaths(t testing.TB, dir string) []string {
	t.Helper()
	segs, err := listSegments(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range segs {
		out = append(out, filepath.Join(dir, s.name))
	}
	return out
}

// refreshCRC recomputes the CRC of the frame at off, as an attacker would.
func refreshCRC(b []byte, off int64) {
	l := int64(binary.LittleEndian.Uint32(b[off:]))
	end := off + 4 + l + HeadSize
	binary.LittleEndian.PutUint32(b[end:], crc32.Checksum(b[off:end], castagnoli))
}
