package audit

import (
	"context"
	"hash/crc32"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// queryAll pages through every record of aid.
func queryAll(t *testing.T, c *Chain, aid uint64) []Record {
	t.Helper()
	var out []Record
	q := Query{AID: &aid, Limit: 7}
	for {
		rs, err := c.Query(q)
		if err != nil {
			t.Fatalf("Query: %v", err)
		}
		out = append(out, rs...)
		if len(rs) < q.Limit {
			return out
		}
		q.AfterSeq = rs[len(rs)-1].Seq
	}
}

func TestIndexedQuery(t *testing.T) {
	root := t.TempDir()
	chainDir, idxDir := filepath.Join(root, "chain"), filepath.Join(root, "index")
	opts := Options{SegmentBytes: 4096, IndexDir: idxDir}
	c := openT(t, chainDir, opts)
	fill(t, c, 100)
	check := func(name string, c *Chain, wantIndexed uint64) {
		t.Run(name, func(t *testing.T) {
			// The acker indexes a batch right after answering it.
			var upTo uint64
			for i := 0; i < 1000; i++ {
				c.idx.mu.RLock()
				upTo = c.idx.upTo
				c.idx.mu.RUnlock()
				if upTo >= wantIndexed {
					break
				}
				time.Sleep(time.Millisecond)
			}
			if upTo < wantIndexed {
				t.Fatalf("index covers %d records, want >= %d", upTo, wantIndexed)
			}
			for aid := uint64(99); aid <= 103; aid++ {
				got := queryAll(t, c, aid)
				var want []Record
				if err := c.scan(0, c.seq, func(r Record) bool {
					if r.AID == aid {
						want = append(want, r)
					}
					return true
				}); err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("aid %d: indexed query gave %d records, scan %d", aid, len(got), len(want))
				}
				if aid >= 100 && aid <= 102 && len(got) == 0 {
					t.Fatalf("aid %d: no records", aid)
				}
			}
		})
	}
	check("live", c, 100)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	saved := filepath.Join(idxDir, indexFile)
	if _, err := os.Stat(saved); err != nil {
		t.Fatalf("Close saved no index: %v", err)
	}

	// Appends made without the index: the saved copy is behind and is
	// caught up, not rebuilt.
	c = openT(t, chainDir, Options{SegmentBytes: 4096})
	fill(t, c, 20)
	c.Close()
	c = openT(t, chainDir, opts)
	check("caught up", c, 120)
	c.Close()

	// A damaged copy is rebuilt.
	b, _ := os.ReadFile(saved)
	b[len(b)/2] ^= 1
	os.WriteFile(saved, b, 0o600)
	c = openT(t, chainDir, opts)
	check("rebuilt after damage", c, 120)
	c.Close()

	// A copy made for another chain of the same length is stale: rebuilt.
	other := filepath.Join(root, "other")
	c2 := openT(t, other, Options{IndexDir: filepath.Join(root, "otherindex")})
	rs := make([]Record, 120)
	for i := range rs {
		rs[i] = rec(i + 1000)
	}
	if _, err := c2.AppendBatch(context.Background(), rs); err != nil {
		t.Fatal(err)
	}
	c2.Close()
	ob, _ := os.ReadFile(filepath.Join(root, "otherindex", indexFile))
	os.WriteFile(saved, ob, 0o600)
	c = openT(t, chainDir, opts)
	check("rebuilt when stale", c, 120)
	fill(t, c, 5)
	check("live after rebuild", c, 125)
	c.Close()
}

func TestDecodeIndexRejects(t *testing.T) {
	x := newIndex()
	for i := uint64(1); i <= 10; i++ {
		if err := x.add(i, i%3, int64(HeaderSize+100*i)); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	if err := saveIndex(dir, x); err != nil {
		t.Fatal(err)
	}
	good, _ := os.ReadFile(filepath.Join(dir, indexFile))
	if y, err := decodeIndex(good); err != nil || !reflect.DeepEqual(y.posts, x.posts) || !reflect.DeepEqual(y.offs, x.offs) {
		t.Fatalf("round trip: %v", err)
	}
	tests := []struct {
		name string
		edit func([]byte) []byte
	}{
		{"empty", func([]byte) []byte { return nil }},
		{"short", func(b []byte) []byte { return b[:20] }},
		{"bit flip", func(b []byte) []byte { b[30] ^= 1; return b }},
		{"truncated", func(b []byte) []byte { return b[:len(b)-9] }},
		{"seq repeated", func(b []byte) []byte {
			// Last posting's last seq := first seq of the same list, CRC fixed.
			n := len(b) - 4
			copy(b[n-8:n], b[n-16:n-8])
			return refreshIndexCRC(b)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.edit(append([]byte(nil), good...))
			if _, err := decodeIndex(b); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func refreshIndexCRC(b []byte) []byte {
	n := len(b) - 4
	c := crcOf(b[:n])
	b[n], b[n+1], b[n+2], b[n+3] = byte(c), byte(c>>8), byte(c>>16), byte(c>>24)
	return b
}

func FuzzDecodeIndex(f *testing.F) {
	x := newIndex()
	for i := uint64(1); i <= 5; i++ {
		_ = x.add(i, i%2, int64(i*10))
	}
	dir := f.TempDir()
	if err := saveIndex(dir, x); err != nil {
		f.Fatal(err)
	}
	good, _ := os.ReadFile(filepath.Join(dir, indexFile))
	f.Add(good)
	f.Add([]byte{})
	f.Add(refreshIndexCRC(append([]byte("COCOAIX1"), make([]byte, 60)...)))
	f.Fuzz(func(t *testing.T, b []byte) {
		y, err := decodeIndex(b)
		if err != nil {
			return
		}
		var n uint64
		for _, seqs := range y.posts {
			n += uint64(len(seqs))
		}
		if n != y.upTo || uint64(len(y.offs)) != y.upTo {
			t.Fatalf("accepted an index of %d records with %d seqs, %d offsets", y.upTo, n, len(y.offs))
		}
	})
}

func crcOf(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }
