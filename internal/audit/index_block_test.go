package audit

import (
	"context"
	"errors"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestPostingBlocks: putPostings cuts blocks at the seq and byte limits,
// extends the last block of a value in a later call, and decodes back to
// exactly the seqs put in.
func TestPostingBlocks(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "p.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	prefix := u64key(7)
	var want []uint64
	put := func(seqs []uint64) {
		t.Helper()
		want = append(want, seqs...)
		if err := db.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists(bAID)
			if err != nil {
				return err
			}
			// A neighbour value on each side: blocks of 7 must not take
			// in or step back into theirs.
			if err := putPostings(b, u64key(6), []uint64{seqs[0]}); err != nil {
				return err
			}
			if err := putPostings(b, u64key(8), []uint64{seqs[0]}); err != nil {
				return err
			}
			return putPostings(b, prefix, seqs)
		}); err != nil {
			t.Fatal(err)
		}
	}
	seqRange := func(from, n, step uint64) []uint64 {
		var s []uint64
		for i := range n {
			s = append(s, from+i*step)
		}
		return s
	}
	put([]uint64{1})                   // a block of one seq, no deltas
	put(seqRange(2, 3000, 1))          // cut at maxBlockSeqs, the first block extended
	put(seqRange(10_000, 2000, 20000)) // 3-byte deltas: cut at maxBlockBytes
	put(seqRange(50_000_000, 5, 1))    // extends the last, partly filled block
	var got []uint64
	blocks := 0
	if err := db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bAID).Cursor()
		for k, v := c.Seek(prefix); isBlock(k, prefix); k, v = c.Next() {
			blocks++
			if len(v)-4 > maxBlockBytes {
				t.Errorf("block %x: %d bytes of deltas", k, len(v)-4)
			}
			s, err := decodeBlock(k, v, nil)
			if err != nil {
				return err
			}
			if len(s) > maxBlockSeqs {
				t.Errorf("block %x: %d seqs", k, len(s))
			}
			got = append(got, s...)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("decoded %d seqs, put %d", len(got), len(want))
	}
	// 3001 seqs of delta 1 fill blocks of 1024, 1024 and 953 (952 bytes
	// of deltas); 24 of the next seqs (one 2-byte and 23 3-byte deltas)
	// top the third up to the byte limit, the other 1976 take blocks of
	// 342 (341 deltas of 3 bytes): 6 more; the last 5 extend the last.
	if blocks != 9 {
		t.Fatalf("%d blocks, want 9", blocks)
	}
}

// TestPostingBlockDamage: every single-byte change of a block's key or
// value, and every cut of its value, is refused by decodeBlock.
func TestPostingBlockDamage(t *testing.T) {
	k := blockKey(strPrefix(nil, "fs.read"), 1000)
	seqs := []uint64{1000, 1001, 1003, 1200, 70000}
	v := encodeBlock(k, seqs)
	if got, err := decodeBlock(k, v, nil); err != nil || !slices.Equal(got, seqs) {
		t.Fatalf("round trip: %v %v", got, err)
	}
	for i := range len(k) + len(v) {
		for _, x := range []byte{1, 0x80, 0xff} {
			k2, v2 := slices.Clone(k), slices.Clone(v)
			if i < len(k) {
				k2[i] ^= x
			} else {
				v2[i-len(k)] ^= x
			}
			if got, err := decodeBlock(k2, v2, nil); !errors.Is(err, ErrIndex) {
				t.Fatalf("byte %d ^ %#x: decoded %v, no error", i, x, got)
			}
		}
	}
	for n := range len(v) {
		if _, err := decodeBlock(k, v[:n], nil); !errors.Is(err, ErrIndex) {
			t.Fatalf("value cut to %d bytes decoded", n)
		}
	}
	// A well-summed block whose deltas are zero or run past 2^64.
	for _, bad := range [][]uint64{{5, 5}, {1, 1 << 63, 2}} {
		kb := blockKey(u64key(1), bad[0])
		if _, err := decodeBlock(kb, encodeBlock(kb, bad), nil); !errors.Is(err, ErrIndex) {
			t.Fatalf("block %v decoded", bad)
		}
	}
}

func TestOffsetBlocks(t *testing.T) {
	offs := []uint32{16, 300, 1<<32 - 1, 16, 17}
	got, err := decodeOffs(encodeOffs(offs), len(offs), nil)
	if err != nil || !slices.Equal(got, offs) {
		t.Fatalf("round trip: %v %v", got, err)
	}
	if _, err := decodeOffs(encodeOffs(offs), 4, nil); !errors.Is(err, ErrIndex) {
		t.Fatal("a block of 5 offsets taken for 4")
	}
	for _, v := range [][]byte{nil, {0x80}, {1, 0x80}, encodeOffs([]uint32{1, 0})[:1:1]} {
		if got, err := decodeOffs(append(v, 0x81), -1, nil); !errors.Is(err, ErrIndex) {
			t.Fatalf("%x decoded as %v", v, got)
		}
	}
	if _, err := decodeOffs(encodeOffs(make([]uint32, offBlock+1)), -1, nil); !errors.Is(err, ErrIndex) {
		t.Fatal("a block over offBlock offsets decoded")
	}
}

// oneAID appends n rows in batches of batch, waiting for the index after
// each so that every batch is its own index transaction; four rows in
// five are aid 101.
func oneAID(t *testing.T, c *Chain, n, batch int) {
	t.Helper()
	for i := 0; i < n; i += batch {
		var rs []Record
		for j := i; j < min(n, i+batch); j++ {
			r := rec(j)
			if r.AID = 101; j%5 == 0 {
				r.AID = 100
			}
			rs = append(rs, r)
		}
		if _, err := c.AppendBatch(context.Background(), rs); err != nil {
			t.Fatal(err)
		}
		if !c.WaitIndexed(10 * time.Second) {
			t.Fatalf("index at %d: %v", c.IndexedUpTo(), c.idx.failed())
		}
	}
}

// aidBlocks returns the first and last seq of each posting block of aid.
func aidBlocks(t *testing.T, c *Chain, aid uint64) [][2]uint64 {
	t.Helper()
	var out [][2]uint64
	if err := c.idx.db.View(func(tx *bolt.Tx) error {
		cur := tx.Bucket(bAID).Cursor()
		p := u64key(aid)
		for k, v := cur.Seek(p); isBlock(k, p); k, v = cur.Next() {
			s, err := decodeBlock(k, v, nil)
			if err != nil {
				return err
			}
			out = append(out, [2]uint64{s[0], s[len(s)-1]})
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// scanQuery is q answered by a full scan.
func scanQuery(t *testing.T, c *Chain, q Query) []Record {
	t.Helper()
	var out []Record
	if err := c.scan(q.AfterSeq, c.seq, func(r Record) bool {
		if q.match(r) {
			out = append(out, r)
		}
		return q.Limit == 0 || len(out) < q.Limit
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestIndexBlockEdges: 10k rows of one aid written in 200 index
// transactions of 63 rows make blocks that span transactions; a page
// asked from AfterSeq at, before and after every block's edges, and
// paging through all of them 100 at a time, answer as the scan does.
func TestIndexBlockEdges(t *testing.T) {
	root := t.TempDir()
	c := openT(t, filepath.Join(root, "chain"), Options{SegmentBytes: 1 << 20, IndexDir: filepath.Join(root, "index")})
	defer c.Close()
	oneAID(t, c, 12500, 63)
	blocks := aidBlocks(t, c, 101)
	// 10000 seqs with deltas 1 or 2 (one byte each): full blocks of
	// 1024 seqs, so they were extended across transactions of about 50.
	if len(blocks) != 10 {
		t.Fatalf("%d blocks for 10000 seqs: %v", len(blocks), blocks)
	}
	aid := uint64(101)
	for _, b := range blocks {
		for _, after := range []uint64{b[0] - 2, b[0] - 1, b[0], b[0] + 1, b[1] - 1, b[1], b[1] + 1} {
			q := Query{AID: &aid, AfterSeq: after, Limit: 100}
			got, err := c.Query(q)
			if err != nil {
				t.Fatal(err)
			}
			if want := scanQuery(t, c, q); !reflect.DeepEqual(got, want) || len(got) == 0 && after < c.seq-5 {
				t.Fatalf("after %d (block %v): %d rows, scan %d", after, b, len(got), len(want))
			}
		}
	}
	var all []Record
	q := Query{AID: &aid, Limit: 100}
	for {
		rs, err := c.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, rs...)
		if len(rs) < q.Limit {
			break
		}
		q.AfterSeq = rs[len(rs)-1].Seq
	}
	if want := scanQuery(t, c, Query{AID: &aid}); len(all) != 10000 || !reflect.DeepEqual(all, want) {
		t.Fatalf("paged %d rows, scan %d", len(all), len(want))
	}
	if c.idx.damaged.Load() || c.idx.rebuilt {
		t.Fatal("a sound index was taken for damaged")
	}
}

// TestIndexBlockCorrupted: a posting or offset block altered inside an
// intact bbolt file (so only the index's own checks can tell) is found
// by the query that reads it: that query scans and is right, and the
// indexer rebuilds the file.
func TestIndexBlockCorrupted(t *testing.T) {
	aid := uint64(101)
	edits := map[string]func(tx *bolt.Tx) error{
		"delta flipped": func(tx *bolt.Tx) error {
			return editFirst(tx, bAID, u64key(aid), func(k, v []byte) ([]byte, []byte) {
				v[3] ^= 0x02
				return k, v
			})
		},
		// A well-summed block that names aid 100's seqs: only the row read
		// back tells.
		"other rows, summed": func(tx *bolt.Tx) error {
			return editFirst(tx, bAID, u64key(aid), func(k, _ []byte) ([]byte, []byte) {
				k = blockKey(u64key(aid), 1)
				return k, encodeBlock(k, []uint64{1, 6, 11})
			})
		},
		"first seq of the key": func(tx *bolt.Tx) error {
			return editFirst(tx, bAID, u64key(aid), func(k, v []byte) ([]byte, []byte) {
				k = blockKey(u64key(aid), 1)
				return k, v
			})
		},
		"offset block cut": func(tx *bolt.Tx) error {
			return editFirst(tx, bOff, u64key(0), func(k, v []byte) ([]byte, []byte) {
				return k, v[:10]
			})
		},
		"offset moved": func(tx *bolt.Tx) error {
			return editFirst(tx, bOff, u64key(0), func(k, v []byte) ([]byte, []byte) {
				offs, _ := decodeOffs(v, -1, nil)
				offs[3] += 7
				return k, encodeOffs(offs)
			})
		},
	}
	for name, edit := range edits {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			chainDir, opts := filepath.Join(root, "chain"), Options{SegmentBytes: 1 << 20, IndexDir: filepath.Join(root, "index")}
			c := openT(t, chainDir, opts)
			oneAID(t, c, 3000, 500)
			c.Close()
			db, err := bolt.Open(filepath.Join(root, "index", indexFileName), 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Update(edit); err != nil {
				t.Fatal(err)
			}
			db.Close()
			c = openT(t, chainDir, opts)
			defer c.Close()
			if c.IndexedUpTo() != 3000 {
				t.Fatalf("the altered file was not opened as is (at %d)", c.IndexedUpTo())
			}
			q := Query{AID: &aid, Limit: 100}
			got, err := c.Query(q)
			if err != nil {
				t.Fatal(err)
			}
			if want := scanQuery(t, c, q); !reflect.DeepEqual(got, want) || len(got) != 100 {
				t.Fatalf("%d rows, scan %d", len(got), len(want))
			}
			end := time.Now().Add(10 * time.Second)
			for !c.idx.rebuilt && time.Now().Before(end) {
				time.Sleep(time.Millisecond)
			}
			if !c.idx.rebuilt {
				t.Fatal("the damage found did not make the indexer rebuild")
			}
			checkIndexed(t, "rebuilt", c, 3000)
		})
	}
}

// editFirst replaces the first key of bucket under prefix by what edit
// makes of it.
func editFirst(tx *bolt.Tx, bucket, prefix []byte, edit func(k, v []byte) ([]byte, []byte)) error {
	b := tx.Bucket(bucket)
	k, v := b.Cursor().Seek(prefix)
	if k == nil {
		return errors.New("no key to edit")
	}
	k, v = slices.Clone(k), slices.Clone(v)
	if err := b.Delete(k); err != nil {
		return err
	}
	k, v = edit(k, v)
	return b.Put(k, v)
}
