package checkpoint

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
