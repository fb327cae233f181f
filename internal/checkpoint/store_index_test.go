package checkpoint

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// TestSizeIndex: the size index answers every lookup as the log does,
// whatever state a crash or a hand left it in: missing, one record short
// (a crash between the log's fsync and the index's write), a last record
// that disagrees (rebuilt), a torn log tail (cut), a damaged middle record
// (an error, never another checkpoint's note).
func TestSizeIndex(t *testing.T) {
	dir := t.TempDir()
	key := newKey(t)
	const n = 700
	writeNotes(t, dir, key, n)
	_, notes, err := ReadCheckpoints(dir, key.Public().(ed25519.PublicKey))
	if err != nil || len(notes) != n {
		t.Fatalf("ReadCheckpoints: %d, %v", len(notes), err)
	}
	idx := filepath.Join(dir, IndexName)
	check := func(t *testing.T) {
		t.Helper()
		f, err := openLogFile(filepath.Join(dir, LogName))
		if err != nil {
			t.Fatal(err)
		}
		defer f.close()
		if f.n != n || !bytes.Equal(f.last, notes[n-1]) || f.lastSize != n*1000 {
			t.Fatalf("opened: %d checkpoints, last size %d", f.n, f.lastSize)
		}
		if st, _ := os.Stat(idx); st.Size() != n*idxRec {
			t.Fatalf("index is %d bytes, want %d", st.Size(), n*idxRec)
		}
		for _, i := range []int{0, 1, 255, 256, 349, n - 2, n - 1} {
			got, ok, err := f.note(uint64(i+1) * 1000)
			if err != nil || !ok || !bytes.Equal(got, notes[i]) {
				t.Fatalf("note of size %d: ok %v, %v", (i+1)*1000, ok, err)
			}
			if a, err := f.after(uint64(i+1) * 1000); err != nil || a != int64(n-1-i) {
				t.Fatalf("after %d = %d, %v; want %d", (i+1)*1000, a, err, n-1-i)
			}
		}
		for _, size := range []uint64{0, 1, 999, 1001, n*1000 + 1} {
			if _, ok, err := f.note(size); ok || err != nil {
				t.Fatalf("note of size %d not stored: ok %v, %v", size, ok, err)
			}
		}
		if a, _ := f.after(0); a != n {
			t.Fatalf("after 0 = %d", a)
		}
	}
	t.Run("built", check)
	t.Run("reopened", check)
	t.Run("missing", func(t *testing.T) { os.Remove(idx); check(t) })
	t.Run("one short", func(t *testing.T) {
		st, _ := os.Stat(idx)
		os.Truncate(idx, st.Size()-idxRec)
		check(t)
	})
	t.Run("half a record", func(t *testing.T) {
		st, _ := os.Stat(idx)
		os.Truncate(idx, st.Size()-idxRec/2)
		check(t)
	})
	t.Run("last disagrees", func(t *testing.T) {
		b, _ := os.ReadFile(idx)
		b[len(b)-idxRec] ^= 0xff // the last record's size
		os.WriteFile(idx, b, 0o600)
		check(t)
	})
	t.Run("another log", func(t *testing.T) {
		// An index from a log of other sizes: its last record disagrees.
		other := t.TempDir()
		writeNotes(t, other, key, 10)
		f, err := openLogFile(filepath.Join(other, LogName))
		if err != nil {
			t.Fatal(err)
		}
		f.close()
		b, _ := os.ReadFile(filepath.Join(other, IndexName))
		os.WriteFile(idx, b, 0o600)
		check(t)
	})
	t.Run("torn log tail", func(t *testing.T) {
		log := filepath.Join(dir, LogName)
		lf, _ := os.OpenFile(log, os.O_WRONLY|os.O_APPEND, 0)
		lf.Write(appendEntry(nil, notes[0])[:20])
		lf.Close()
		check(t)
	})
	t.Run("damaged middle record", func(t *testing.T) {
		b, _ := os.ReadFile(idx)
		copy(b[100*idxRec+8:], b[101*idxRec+8:101*idxRec+16]) // record 100 points at 101's entry
		os.WriteFile(idx, b, 0o600)
		f, err := openLogFile(filepath.Join(dir, LogName))
		if err != nil {
			t.Fatal(err)
		}
		defer f.close()
		if got, ok, err := f.note(101 * 1000); !errors.Is(err, ErrBadLog) || ok || got != nil {
			t.Fatalf("a record pointing at another checkpoint: ok %v, %v", ok, err)
		}
		os.Remove(idx)
	})
	t.Run("sizes must grow", func(t *testing.T) {
		f, err := openLogFile(filepath.Join(dir, LogName))
		if err != nil {
			t.Fatal(err)
		}
		defer f.close()
		if err := f.append(notes[3]); !errors.Is(err, ErrBadLog) {
			t.Fatalf("appending a smaller checkpoint: %v", err)
		}
	})
}

// TestProveFromOldCheckpointAfterReopen: a consistency proof from a
// checkpoint stored long before, after a restart (the note comes from the
// log through the index, not from memory).
func TestProveFromOldCheckpointAfterReopen(t *testing.T) {
	e := newEnv(t, 10)
	e.fill(t, 0, 95)
	e.close(t)
	e2 := openEnv(t, e.dir, e.key, 10)
	defer e2.close(t)
	e2.fill(t, 95, 30)
	cps, _, err := ReadCheckpoints(e.chainDir(), e2.pub())
	if err != nil || len(cps) < 3 {
		t.Fatalf("stored checkpoints %d, %v", len(cps), err)
	}
	old := cps[1].Size
	p, err := e2.log.Prove(120, old)
	if err != nil {
		t.Fatal(err)
	}
	if p.Consistency == nil || !bytes.Contains([]byte(p.Consistency.Old), []byte("\n"+strconv.FormatUint(old, 10)+"\n")) {
		t.Fatalf("consistency proof %+v, want one from size %d", p.Consistency, old)
	}
	if _, _, err := VerifyInclusion(p, e2.pub()); err != nil {
		t.Fatal(err)
	}
	if _, err := e2.log.Prove(120, old+1); !errors.Is(err, ErrNotFound) || old+1 == cps[2].Size {
		t.Fatalf("from an unstored size: %v", err)
	}
	if got := e2.log.CheckpointsAfter(100); got < 1 {
		t.Fatalf("CheckpointsAfter(100) = %d", got)
	}
}
