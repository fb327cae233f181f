package checkpoint

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coconut-os/coconut/internal/audit"
)

// flipRecord flips a byte in the record bytes of seq (CRC left stale).
func flipRecord(t *testing.T, chainDir string, seq uint64) {
	t.Helper()
	ents, _ := os.ReadDir(chainDir)
	for i := len(ents) - 1; i >= 0; i-- {
		name := ents[i].Name()
		if filepath.Ext(name) != ".seg" {
			continue
		}
		p := filepath.Join(chainDir, name)
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		rd, err := audit.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		if rd.Header().FirstSeq > seq {
			f.Close()
			continue
		}
		for s := rd.Header().FirstSeq; ; s++ {
			fr, err := rd.Next()
			if errors.Is(err, io.EOF) {
				t.Fatalf("seq %d not in %s", seq, name)
			}
			if err != nil {
				t.Fatal(err)
			}
			if s == seq {
				f.Close()
				b, _ := os.ReadFile(p)
				b[fr.Offset+4+20] ^= 1
				if err := os.WriteFile(p, b, 0o600); err != nil {
					t.Fatal(err)
				}
				return
			}
		}
	}
	t.Fatalf("seq %d not found", seq)
}

func copyState(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	return dst
}

func TestIncrementalVerify(t *testing.T) {
	e := newEnv(t, 25)
	e.fill(t, 0, 200)
	e.close(t)
	vr, rep, ver, err := VerifyChainWith(e.chainDir(), e.pub(), VerifyOptions{})
	if err != nil || ver == nil || ver.Size != rep.Latest.Size || ver.Size != vr.Records {
		t.Fatalf("full verify: %+v %+v %+v %v", vr, rep, ver, err)
	}
	path := filepath.Join(e.dir, VerifiedName)
	if err := SaveVerified(path, ver); err != nil {
		t.Fatal(err)
	}
	if ver, err = LoadVerified(path); err != nil || ver == nil {
		t.Fatalf("LoadVerified: %v %v", ver, err)
	}

	// 200 new rows, more checkpoints.
	e = openEnv(t, e.dir, e.key, 25)
	e.fill(t, 200, 200)
	e.close(t)
	full, _, _, err := VerifyChainWith(e.chainDir(), e.pub(), VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	inc, rep2, ver2, err := VerifyChainWith(e.chainDir(), e.pub(), VerifyOptions{Since: ver})
	if err != nil || inc != full || ver2 == nil || ver2.Size != rep2.Latest.Size || ver2.Size <= ver.Size {
		t.Fatalf("incremental %+v %+v %v, full %+v", inc, ver2, err, full)
	}
	// Nothing new since: still fine, the record stays.
	if _, _, ver3, err := VerifyChainWith(e.chainDir(), e.pub(), VerifyOptions{Since: ver2}); err != nil || ver3.Size != ver2.Size {
		t.Fatalf("no-op incremental: %v %v", ver3, err)
	}

	t.Run("tampered new row", func(t *testing.T) {
		dir := copyState(t, e.dir)
		bad := ver.Size + 37
		flipRecord(t, filepath.Join(dir, "chain"), bad)
		vr, _, _, err := VerifyChainWith(filepath.Join(dir, "chain"), e.pub(), VerifyOptions{Since: ver})
		if err == nil || vr.FirstBad != bad {
			t.Fatalf("first bad %d, want %d (%v)", vr.FirstBad, bad, err)
		}
	})

	t.Run("old part rewritten and re-signed", func(t *testing.T) {
		// Whoever holds the host key rebuilds the whole chain with row 10
		// changed and signs new checkpoints over it.
		dir := t.TempDir()
		mustMkdir(t, filepath.Join(dir, "chain"))
		f := openEnv(t, dir, e.key, 25)
		for i := 0; i < 400; i++ {
			r := testRec(i)
			if i == 9 {
				r.Result = audit.ResultDeny
			}
			if _, err := f.chain.Append(context.Background(), r); err != nil {
				t.Fatal(err)
			}
		}
		f.close(t)
		if _, _, _, err := VerifyChainWith(f.chainDir(), e.pub(), VerifyOptions{}); err != nil {
			t.Fatalf("the forgery is self-consistent: %v", err)
		}
		vr, _, _, err := VerifyChainWith(f.chainDir(), e.pub(), VerifyOptions{Since: ver})
		if err == nil || vr.FirstBad == 0 || vr.FirstBad > ver.Size {
			t.Fatalf("rewritten prefix: first bad %d, want 1..%d (%v)", vr.FirstBad, ver.Size, err)
		}
	})

	t.Run("forked checkpoint", func(t *testing.T) {
		// The rows are untouched, but a checkpoint signed over another tree
		// follows: it is not consistent with the one verified before.
		dir := copyState(t, e.dir)
		cd := filepath.Join(dir, "chain")
		c, err := audit.Open(cd, audit.Options{})
		if err != nil {
			t.Fatal(err)
		}
		for i := 400; i < 410; i++ {
			if _, err := c.Append(context.Background(), testRec(i)); err != nil {
				t.Fatal(err)
			}
		}
		n, _ := c.Head()
		c.Close()
		cp := Checkpoint{Origin: HostOrigin(e.pub()), Size: n}
		rand.Read(cp.Root[:])
		s, err := NewSigner(cp.Origin, e.key)
		if err != nil {
			t.Fatal(err)
		}
		note, err := Sign(cp, s)
		if err != nil {
			t.Fatal(err)
		}
		lf, err := os.OpenFile(filepath.Join(cd, LogName), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		lf.Write(appendEntry(nil, note))
		lf.Close()
		vr, _, _, err := VerifyChainWith(cd, e.pub(), VerifyOptions{Since: ver})
		if !errors.Is(err, ErrMismatch) || !strings.Contains(err.Error(), "not consistent") || vr.FirstBad != ver2.Size+1 {
			t.Fatalf("forked checkpoint: %+v %v", vr, err)
		}
	})

	t.Run("damaged record", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), VerifiedName)
		bad := *ver
		bad.Root = append([]byte(nil), ver.Root...)
		bad.Root[0] ^= 1
		if err := SaveVerified(p, &bad); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadVerified(p); !errors.Is(err, ErrBadLog) {
			t.Fatalf("damaged record loads: %v", err)
		}
	})
}

// openSmallSegments is openEnv with 2 KB segments, so the chain spans
// many and the Merkle ranges are merged across segment boundaries.
func openSmallSegments(t *testing.T, dir string, key ed25519.PrivateKey, every uint64) *env {
	t.Helper()
	e := &env{dir: dir, key: key}
	var err error
	if e.log, err = New(Config{ChainDir: e.chainDir(), TreeDir: e.treeDir(), Key: key, Every: every, Interval: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if e.chain, err = audit.Open(e.chainDir(), audit.Options{Observer: e.log, SegmentBytes: 2000}); err != nil {
		t.Fatal(err)
	}
	if err := e.log.Start(e.chain); err != nil {
		t.Fatal(err)
	}
	return e
}

// TestVerifyAcrossSegments: checkpoints every 7 rows over ~10-row
// segments, so checkpoint sizes fall inside, at the start and at the end
// of segments. Full and incremental verifies agree with the serial
// reference at every worker count; an altered row in a middle segment is
// named; every incremental starting point (each checkpoint) works.
func TestVerifyAcrossSegments(t *testing.T) {
	dir := t.TempDir()
	mustMkdir(t, filepath.Join(dir, "chain"))
	e := openSmallSegments(t, dir, newKey(t), 7)
	for i := 0; i < 300; i += 7 {
		e.checkpointAt(t, i, i+7)
	}
	e.close(t)
	segs, _ := filepath.Glob(filepath.Join(e.chainDir(), "*.seg"))
	if len(segs) < 10 {
		t.Fatalf("want many segments, got %d", len(segs))
	}
	cps, _, err := ReadCheckpoints(e.chainDir(), e.pub())
	if err != nil || len(cps) < 30 {
		t.Fatalf("checkpoints: %d %v", len(cps), err)
	}
	var ref audit.VerifyReport
	for _, w := range []int{1, 2, 5} {
		vr, _, ver, err := VerifyChainWith(e.chainDir(), e.pub(), VerifyOptions{Workers: w})
		if err != nil || ver == nil || ver.Size != cps[len(cps)-1].Size {
			t.Fatalf("workers %d: %+v %+v %v", w, vr, ver, err)
		}
		if w > 1 && vr != ref {
			t.Fatalf("workers %d: %+v, one worker %+v", w, vr, ref)
		}
		ref = vr
	}
	// Every checkpoint as the incremental starting point: the range and
	// head recorded by a full run at that size.
	for i, cp := range cps[:len(cps)-1] {
		since := verifiedAt(t, e, cp.Size)
		vr, _, ver, err := VerifyChainWith(e.chainDir(), e.pub(), VerifyOptions{Since: since, Workers: 3})
		if err != nil || vr != ref || ver.Size != cps[len(cps)-1].Size {
			t.Fatalf("incremental from checkpoint %d (size %d): %+v %v", i+1, cp.Size, vr, err)
		}
	}
	// A row altered in a middle segment (CRC refreshed by rewriting the
	// chain is harder; a stale CRC is named at its seq just the same).
	bad := cps[len(cps)/2].Size - 3
	flipRecord(t, e.chainDir(), bad)
	for _, w := range []int{1, 4} {
		vr, _, _, err := VerifyChainWith(e.chainDir(), e.pub(), VerifyOptions{Workers: w})
		if err == nil || vr.FirstBad != bad {
			t.Fatalf("workers %d: first bad %d, want %d (%v)", w, vr.FirstBad, bad, err)
		}
	}
}

// verifiedAt runs a full verify of e's chain whose "latest" checkpoint is
// the one of the given size, to get the record an earlier run would have
// left.
func verifiedAt(t *testing.T, e *env, size uint64) *Verified {
	t.Helper()
	dir := copyState(t, e.dir)
	cd := filepath.Join(dir, "chain")
	notes, _, _, err := ReadLog(filepath.Join(cd, LogName))
	if err != nil {
		t.Fatal(err)
	}
	var keep []byte
	for _, n := range notes {
		cp, err := Open(n, HostOrigin(e.pub()), e.pub())
		if err != nil {
			t.Fatal(err)
		}
		if cp.Size <= size {
			keep = appendEntry(keep, n)
		}
	}
	if err := os.WriteFile(filepath.Join(cd, LogName), keep, 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, ver, err := VerifyChainWith(cd, e.pub(), VerifyOptions{})
	if err != nil || ver == nil || ver.Size != size {
		t.Fatalf("verify at %d: %+v %v", size, ver, err)
	}
	return ver
}

// FuzzLoadVerified: any bytes in the record file give a record that
// restores, or an error; never a panic.
func FuzzLoadVerified(f *testing.F) {
	f.Add([]byte(`{"size":1,"root":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","head":"00","range":[]}`))
	f.Add([]byte(`{"size":3,"root":"","head":"","range":[null,"AA=="]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(t.TempDir(), VerifiedName)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		v, err := LoadVerified(p)
		if err != nil {
			return
		}
		if v == nil {
			t.Fatal("no record and no error for an existing file")
		}
		if _, _, err := v.restore(); err != nil {
			t.Fatalf("loaded record does not restore: %v", err)
		}
	})
}
