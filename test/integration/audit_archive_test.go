package integration

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/coconut-os/coconut/internal/audit"
)

// TestAuditArchive: a chain of several segments (the daemon's own, then
// small ones added while it is stopped) is compressed by coconutd in the
// background, archived by `coconut audit archive` to another directory,
// and still verifies offline and proves a row of an archived segment
// through the daemon; with the archive directory gone verify names the
// first row missing, and --relink points the manifest at its new place.
func TestAuditArchive(t *testing.T) {
	e := newEnv(t)
	chainDir := e.smallSegments(3000, func(int) uint64 { return 7 }) // compresses every sealed segment, appends to the last one
	deadline := time.Now().Add(30 * time.Second)
	for {
		plain, _ := filepath.Glob(filepath.Join(chainDir, "*.seg"))
		if len(plain) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("coconutd left %d plain segments, want only the active one", len(plain))
		}
		time.Sleep(100 * time.Millisecond)
	}
	zst, _ := filepath.Glob(filepath.Join(chainDir, "*.seg.zst"))
	if len(zst) < 3 {
		t.Fatalf("%d compressed segments", len(zst))
	}

	arch := filepath.Join(e.dir, "archive")
	out := e.must("audit", "archive", "--before", "2h", "--to", arch, "--json")
	var none audit.ArchiveReport
	if err := json.Unmarshal([]byte(out), &none); err != nil || len(none.Moved) != 0 {
		t.Fatalf("archive of rows older than 2h moved some: %q %v", out, err)
	}
	out = e.must("audit", "archive", "--before", time.Now().Add(time.Hour).UTC().Format(time.RFC3339), "--to", arch, "--json")
	var rep audit.ArchiveReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil || len(rep.Moved) != len(zst) || rep.To != arch {
		t.Fatalf("archive: %q %v (%d compressed segments)", out, err, len(zst))
	}

	// A proof of row 1, now in the archive, served by the running daemon.
	proof := filepath.Join(e.dir, "proof.json")
	e.must("audit", "prove", "1", "--out", proof)
	e.stop(syscall.SIGTERM)
	if got := e.must("audit", "verify", "--proof", proof, "--json"); !jsonOK(t, got) {
		t.Fatalf("proof of an archived row: %s", got)
	}
	if got := e.must("audit", "verify", "--json"); !jsonOK(t, got) {
		t.Fatalf("verify with archived segments: %s", got)
	}

	moved := filepath.Join(e.dir, "archive-disk")
	if err := os.Rename(arch, moved); err != nil {
		t.Fatal(err)
	}
	out, _, code := e.cli("audit", "verify", "--json")
	var bad struct {
		OK       bool   `json:"ok"`
		FirstBad uint64 `json:"first_bad"`
		Reason   string `json:"reason"`
	}
	json.Unmarshal([]byte(out), &bad)
	if code == 0 || bad.OK || bad.FirstBad != 1 {
		t.Fatalf("verify without the archive: exit %d %s", code, out)
	}
	e.must("audit", "archive", "--relink", moved)
	if got := e.must("audit", "verify", "--json"); !jsonOK(t, got) {
		t.Fatalf("verify after --relink: %s", got)
	}
}

func jsonOK(t *testing.T, s string) bool {
	t.Helper()
	var v struct {
		OK bool `json:"ok"`
	}
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return v.OK
}

// smallSegments stops coconutd, appends n rows (of agent aid(i)) to its
// chain in 32 KiB segments, and starts it again; it returns the chain
// directory.
func (e *env) smallSegments(n int, aid func(i int) uint64) string {
	e.t.Helper()
	e.stop(syscall.SIGTERM)
	chainDir := filepath.Join(e.state, "chain")
	c, err := audit.Open(chainDir, audit.Options{SegmentBytes: 32 << 10})
	if err != nil {
		e.t.Fatal(err)
	}
	var rows []audit.Record
	for i := range n {
		rows = append(rows, audit.CapUse(aid(i), "fs.read", "/data/"+strconv.Itoa(i), 4242, 0, nil))
	}
	if _, err := c.AppendBatch(context.Background(), rows); err != nil {
		e.t.Fatal(err)
	}
	c.Close()
	e.start()
	return chainDir
}
