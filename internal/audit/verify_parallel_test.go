package audit

import (
	"math/rand"
	"os"
	"path/filepath"
	"testing"
)

// serialVerify is the one-goroutine reference walk.
func serialVerify(dir string) (VerifyReport, error) { return VerifyFunc(dir, nil) }

// sameReport fails unless the parallel walk, at several worker counts,
// reports exactly what the serial one does.
func sameReport(t *testing.T, dir, what string) VerifyReport {
	t.Helper()
	want, werr := serialVerify(dir)
	for _, w := range []int{1, 2, 3, 8} {
		got, gerr := VerifyParallel(dir, ParallelOptions{Workers: w})
		if (gerr == nil) != (werr == nil) || got != want {
			t.Fatalf("%s: workers %d: parallel %+v (%v), serial %+v (%v)", what, w, got, gerr, want, werr)
		}
	}
	return want
}

// manySegments makes a chain of n records over many small segments.
func manySegments(t *testing.T, n int) (string, []string) {
	t.Helper()
	dir := t.TempDir()
	c := openT(t, dir, Options{SegmentBytes: 2000})
	fill(t, c, n)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	paths := segPaths(t, dir)
	if len(paths) < 10 {
		t.Fatalf("want many segments, got %d", len(paths))
	}
	return dir, paths
}

// alter flips a byte of the record at frame i of segment path and, with
// crc, recomputes its CRC as an attacker would.
func alter(t *testing.T, path string, i int, crc bool) uint64 {
	t.Helper()
	fs := frames(t, path)
	if i < 0 {
		i += len(fs)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[fs[i].off+4+30] ^= 0x01 // inside the time field: still canonical
	if crc {
		refreshCRC(b, fs[i].off)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return fs[i].seq
}

func TestParallelVerifyTamperPositions(t *testing.T) {
	cases := []struct {
		name  string
		seg   func(n int) int // which segment
		frame int             // which frame of it (negative: from the end)
	}{
		{"first segment", func(int) int { return 0 }, 1},
		{"middle segment", func(n int) int { return n / 2 }, 1},
		{"last segment", func(n int) int { return n - 1 }, 1},
		{"first frame after a boundary", func(n int) int { return n / 3 }, 0},
		{"last frame before a boundary", func(n int) int { return n / 3 }, -1},
	}
	for _, tc := range cases {
		for _, crc := range []bool{true, false} {
			t.Run(tc.name+map[bool]string{true: " crc refreshed", false: " crc stale"}[crc], func(t *testing.T) {
				dir, paths := manySegments(t, 300)
				if tc.seg(len(paths)) == len(paths)-1 && tc.frame == -1 {
					t.Skip("not a boundary")
				}
				seq := alter(t, paths[tc.seg(len(paths))], tc.frame, crc)
				rep := sameReport(t, dir, tc.name)
				if rep.FirstBad != seq {
					t.Fatalf("FirstBad %d, altered seq %d (%s)", rep.FirstBad, seq, rep.Reason)
				}
			})
		}
	}
}

// TestParallelVerifyRandom alters random chains at random places in
// random ways; parallel and serial must always agree.
func TestParallelVerifyRandom(t *testing.T) {
	rnd := rand.New(rand.NewSource(17))
	dir, paths := manySegments(t, 400)
	sameReport(t, dir, "intact")
	orig := map[string][]byte{}
	for _, p := range paths {
		b, _ := os.ReadFile(p)
		orig[p] = b
	}
	restore := func() {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if filepath.Ext(e.Name()) == segExt {
				os.Remove(filepath.Join(dir, e.Name()))
			}
		}
		for p, b := range orig {
			os.WriteFile(p, b, 0o600)
		}
	}
	for round := 0; round < 60; round++ {
		restore()
		p := paths[rnd.Intn(len(paths))]
		b := append([]byte(nil), orig[p]...)
		what := ""
		switch rnd.Intn(5) {
		case 0: // any byte, anywhere
			b[rnd.Intn(len(b))] ^= byte(1 + rnd.Intn(255))
			what = "byte flip"
		case 1: // a record altered, its CRC recomputed
			fs := frames(t, p)
			f := fs[rnd.Intn(len(fs))]
			b[f.off+4+30] ^= 1
			refreshCRC(b, f.off)
			what = "record altered"
		case 2: // cut short
			b = b[:HeaderSize+rnd.Intn(len(b)-HeaderSize)]
			what = "truncated"
		case 3: // a whole segment gone
			b = nil
			what = "segment removed"
		case 4: // two frames swapped
			fs := frames(t, p)
			if len(fs) < 2 {
				continue
			}
			i := rnd.Intn(len(fs) - 1)
			a, c := fs[i], fs[i+1]
			sw := append(append([]byte(nil), b[c.off:c.end]...), b[a.off:a.end]...)
			copy(b[a.off:], sw)
			what = "frames swapped"
		}
		if b == nil {
			os.Remove(p)
		} else {
			os.WriteFile(p, b, 0o600)
		}
		rep := sameReport(t, dir, what)
		if rep.Reason == "" {
			t.Fatalf("round %d: %s in %s not caught", round, what, filepath.Base(p))
		}
	}
}

// TestVerifyIncrementalChain checks the audit half of an incremental
// verify: only records after After are hashed, the head at After must be
// the recorded one, and tampering after it is caught at its seq.
func TestVerifyIncrementalChain(t *testing.T) {
	dir, paths := manySegments(t, 300)
	full, err := Verify(dir)
	if err != nil {
		t.Fatal(err)
	}
	mid := frames(t, paths[len(paths)/2])
	after := mid[len(mid)/2].seq
	var head [HeadSize]byte
	if _, err := VerifyParallel(dir, ParallelOptions{NewSink: func(uint64) SegmentSink { return headAt{after, &head} }}); err != nil {
		t.Fatal(err)
	}
	rep, err := VerifyParallel(dir, ParallelOptions{After: after, AfterHead: head})
	if err != nil || rep != full {
		t.Fatalf("incremental %+v %v, full %+v", rep, err, full)
	}
	// Wrong recorded head: the prefix was rewritten.
	bad := head
	bad[0] ^= 1
	if rep, err := VerifyParallel(dir, ParallelOptions{After: after, AfterHead: bad}); err == nil || rep.FirstBad != after {
		t.Fatalf("wrong head: %+v %v", rep, err)
	}
	// A record before After altered (CRC refreshed): not hashed, not seen.
	alter(t, paths[0], 1, true)
	if _, err := VerifyParallel(dir, ParallelOptions{After: after, AfterHead: head}); err != nil {
		t.Fatalf("altered prefix is trusted in an incremental run, got %v", err)
	}
	// A record after After altered: caught at its seq.
	seq := alter(t, paths[len(paths)-2], 2, true)
	if rep, err := VerifyParallel(dir, ParallelOptions{After: after, AfterHead: head}); err == nil || rep.FirstBad != seq {
		t.Fatalf("altered new record %d: %+v %v", seq, rep, err)
	}
	// After beyond the chain: rows dropped.
	if _, err := VerifyParallel(dir, ParallelOptions{After: full.Records + 5, AfterHead: head}); err == nil {
		t.Fatal("a chain shorter than the verified size passes")
	}
}

type headAt struct {
	seq uint64
	out *[HeadSize]byte
}

func (h headAt) Record(seq uint64, _ []byte, head [HeadSize]byte) {
	if seq == h.seq {
		*h.out = head
	}
}
