package checkpoint

import (
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/coconut-os/coconut/internal/audit"
)

// openSmallEnv is openEnv with small segments, so a few hundred rows
// make several sealed segments.
func openSmallEnv(t testing.TB, dir string, key ed25519.PrivateKey) *env {
	t.Helper()
	e := &env{dir: dir, key: key}
	mustMkdir(t, e.chainDir())
	var err error
	if e.log, err = New(Config{ChainDir: e.chainDir(), TreeDir: e.treeDir(), Key: key, Every: 1 << 30, Interval: time.Hour}); err != nil {
		t.Fatalf("New: %v", err)
	}
	if e.chain, err = audit.Open(e.chainDir(), audit.Options{Observer: e.log, SegmentBytes: 4096}); err != nil {
		t.Fatalf("audit.Open: %v", err)
	}
	if err := e.log.Start(e.chain); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return e
}

// deletedEnv is a chain of 600 rows, checkpoints at 250 and 600, whose
// sealed segments up to the checkpoint at 250 were deleted; e is open.
func deletedEnv(t *testing.T) (*env, audit.DeleteReport) {
	t.Helper()
	e := openSmallEnv(t, t.TempDir(), newKey(t))
	e.checkpointAt(t, 0, 250)
	e.fill(t, 250, 100) // rows past the latest checkpoint: kept
	plan, err := PlanDelete(e.chainDir(), e.pub(), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Segments) < 2 || plan.First != 1 || plan.Last > 250 || plan.Last < 200 || plan.HeldBack == 0 {
		t.Fatalf("plan: %+v", plan)
	}
	rep, err := DeletePrefix(e.chain, e.pub(), plan, "uid 0 (root)")
	if err != nil {
		t.Fatalf("DeletePrefix: %v", err)
	}
	e.checkpointAt(t, 351, 600)
	return e, rep
}

// TestDeletePrefix: rows deleted, verify passes from the pruned record
// and says how many went; later rows' inclusion proofs verify with
// transparency-dev's verifier, a consistency proof between two later
// checkpoints too; a deleted row's proof names the deletion; queries
// skip the prefix; a restart catches up from the tree cache.
func TestDeletePrefix(t *testing.T) {
	e, rep := deletedEnv(t)
	last := rep.Last
	m, err := audit.ReadArchive(e.chainDir())
	if err != nil {
		t.Fatal(err)
	}
	if m.Pruned == nil || m.Pruned.Last != last || m.Pruned.Row != rep.Row || m.Pruned.By != "uid 0 (root)" {
		t.Fatalf("pruned record: %+v", m.Pruned)
	}
	for _, a := range m.Segments {
		if a.Last <= last {
			if a.Deleted == nil {
				t.Fatalf("segment %d..%d not marked deleted", a.First, a.Last)
			}
			if _, err := os.Stat(filepath.Join(e.chainDir(), a.Name)); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("%s still there: %v", a.Name, err)
			}
		}
	}
	// The audit.delete row names the range.
	rows, err := e.chain.Query(audit.Query{Type: audit.TypeAuditDelete})
	if err != nil || len(rows) != 1 || rows[0].Seq != rep.Row || rows[0].Detail["first"] != "1" || rows[0].Detail["last"] != jsonNum(last) {
		t.Fatalf("audit.delete rows: %+v %v", rows, err)
	}

	// A later row, proved to the checkpoint at 600, with a consistency
	// proof from the one at 250 (whose nodes lie mostly in the deleted
	// prefix: the tree cache keeps every node).
	p, err := e.log.Prove(last+5, 250)
	if err != nil {
		t.Fatalf("Prove(%d): %v", last+5, err)
	}
	cp, _, err := VerifyInclusion(p, e.pub())
	if err != nil {
		t.Fatal(err)
	}
	leaf := rfc6962.DefaultHasher.HashLeaf([]byte(p.Record))
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, p.LeafIndex, p.TreeSize, leaf, p.Hashes, cp.Root[:]); err != nil {
		t.Fatalf("transparency-dev VerifyInclusion: %v", err)
	}
	// Consistency between two checkpoints after the prefix.
	e.checkpointAt(t, 600, 700)
	p, err = e.log.Prove(650, 600)
	if err != nil {
		t.Fatalf("Prove(650, 600): %v", err)
	}
	if _, _, err := VerifyInclusion(p, e.pub()); err != nil {
		t.Fatal(err)
	}

	// A deleted row: a precise error, no proof.
	_, err = e.log.Prove(3, 0)
	var de *audit.DeletedError
	if !errors.As(err, &de) || de.Seq != 3 || !strings.Contains(err.Error(), "row 3 was deleted on") || !strings.Contains(err.Error(), "coconut audit archive --delete") {
		t.Fatalf("Prove(3): %v", err)
	}

	// Queries (by scan) skip the prefix.
	aid := uint64(101)
	got, err := e.chain.Query(audit.Query{AID: &aid, Limit: 1000})
	if err != nil || len(got) == 0 || got[0].Seq <= last {
		t.Fatalf("query by aid: %d rows, first %+v, %v", len(got), got, err)
	}

	// A restart catches up from the cache, proofs still work.
	e.close(t)
	e2 := openSmallEnv(t, e.dir, e.key)
	if _, err := e2.log.Prove(last+1, 0); err != nil {
		t.Fatalf("Prove after restart: %v", err)
	}
	e2.close(t)

	vr, vrep, latest, err := VerifyChainWith(e.chainDir(), e.pub(), VerifyOptions{})
	if err != nil {
		t.Fatalf("verify: %v (%+v)", err, vr)
	}
	if vrep.Deleted != last || vr.Deleted != last || latest == nil || latest.Size != vrep.Latest.Size || vr.Records != vrep.Latest.Size {
		t.Fatalf("verify report: %+v %+v %+v", vr, vrep, latest)
	}
	// Plain BLAKE3 verify starts from the pruned head too.
	if vr, err := audit.Verify(e.chainDir()); err != nil || vr.Deleted != last {
		t.Fatalf("audit.Verify: %+v %v", vr, err)
	}
}

func jsonNum(n uint64) string { b, _ := json.Marshal(n); return string(b) }

// TestDeletePrefixRebuildFails: a tree cache lost after a deletion cannot
// be rebuilt from the chain; the log refuses to start with a precise
// error instead of signing a tree of other rows.
func TestDeletePrefixRebuildFails(t *testing.T) {
	e, rep := deletedEnv(t)
	e.close(t)
	if err := os.RemoveAll(e.treeDir()); err != nil {
		t.Fatal(err)
	}
	l, err := New(Config{ChainDir: e.chainDir(), TreeDir: e.treeDir(), Key: e.key, Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c, err := audit.Open(e.chainDir(), audit.Options{Observer: l})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = l.Start(c)
	if !errors.Is(err, ErrMismatch) || !errors.Is(err, audit.ErrDeleted) || !strings.Contains(err.Error(), "cannot be rebuilt") {
		t.Fatalf("Start without cache after deleting rows 1..%d: %v", rep.Last, err)
	}
}

// TestDeletePrefixTampered: a pruned record whose head or compact range
// was changed fails verify.
func TestDeletePrefixTampered(t *testing.T) {
	e, rep := deletedEnv(t)
	e.close(t)
	edit := func(t *testing.T, f func(m map[string]any)) string {
		dir := copyState(t, e.dir)
		p := filepath.Join(dir, "chain", audit.ArchiveName)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		f(m)
		if b, err = json.Marshal(m); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return filepath.Join(dir, "chain")
	}
	flip := func(h string) string {
		b, _ := hex.DecodeString(h)
		b[0] ^= 1
		return hex.EncodeToString(b)
	}
	// The deletion's own row: the record must name an audit.delete row of
	// that deletion (a record written by hand, pointing at another row or
	// at none, is rows removed without the chain's record).
	for name, row := range map[string]float64{"row another": float64(rep.Last + 1), "row missing": 1 << 40, "row inside": 1} {
		t.Run(name, func(t *testing.T) {
			dir := edit(t, func(m map[string]any) { m["pruned"].(map[string]any)["row"] = row })
			_, _, _, err := VerifyChainWith(dir, e.pub(), VerifyOptions{})
			if !errors.Is(err, ErrMismatch) {
				t.Fatalf("verify with the pruned record naming row %v: %v", row, err)
			}
		})
	}
	t.Run("head", func(t *testing.T) {
		dir := edit(t, func(m map[string]any) {
			pr := m["pruned"].(map[string]any)
			pr["head"] = flip(pr["head"].(string))
			for _, s := range m["segments"].([]any) { // the entry too, or the manifest itself is refused
				s := s.(map[string]any)
				if s["last"].(float64) == float64(rep.Last) {
					s["head"] = pr["head"]
				}
			}
		})
		if _, _, _, err := VerifyChainWith(dir, e.pub(), VerifyOptions{}); err == nil {
			t.Fatal("verify passed with a tampered pruned head")
		}
		if _, err := audit.Verify(dir); err == nil {
			t.Fatal("audit.Verify passed with a tampered pruned head")
		}
	})
	t.Run("range", func(t *testing.T) {
		dir := edit(t, func(m map[string]any) {
			rng := m["pruned"].(map[string]any)["range"].([]any)
			rng[len(rng)-1] = flip(rng[len(rng)-1].(string))
		})
		_, _, _, err := VerifyChainWith(dir, e.pub(), VerifyOptions{})
		if !errors.Is(err, ErrMismatch) {
			t.Fatalf("verify with a tampered pruned range: %v", err)
		}
	})
	t.Run("head only", func(t *testing.T) {
		dir := edit(t, func(m map[string]any) {
			pr := m["pruned"].(map[string]any)
			pr["head"] = flip(pr["head"].(string))
		})
		if _, _, _, err := VerifyChainWith(dir, e.pub(), VerifyOptions{}); !errors.Is(err, audit.ErrBadArchive) {
			t.Fatalf("verify with a pruned head unlike its entry's: %v", err)
		}
	})
}

// TestDeletePrefixRechecksPlan: a plan handed to DeletePrefix that names
// more than a plan made now allows (rows past the latest checkpoint, or
// a later cut) is refused, nothing deleted.
func TestDeletePrefixRechecksPlan(t *testing.T) {
	e := openSmallEnv(t, t.TempDir(), newKey(t))
	e.checkpointAt(t, 0, 250)
	e.fill(t, 250, 100)
	plan, err := PlanDelete(e.chainDir(), e.pub(), time.Now().Add(time.Hour))
	if err != nil || len(plan.Segments) < 2 {
		t.Fatalf("plan %+v, %v", plan, err)
	}
	wide := plan
	wide.Last = 340 // past the checkpoint of size 250
	if _, err := DeletePrefix(e.chain, e.pub(), wide, "test"); err == nil {
		t.Fatal("a plan past the latest checkpoint was carried out")
	}
	early := plan
	early.Before = t0 // the rows are from t0 on: none is older
	if _, err := DeletePrefix(e.chain, e.pub(), early, "test"); err == nil {
		t.Fatal("a plan whose cut allows nothing was carried out")
	}
	if p, _ := audit.Pruned(e.chainDir()); p != nil {
		t.Fatalf("something was deleted: %+v", p)
	}
	if _, err := DeletePrefix(e.chain, e.pub(), plan, "test"); err != nil {
		t.Fatalf("the plan as made: %v", err)
	}
}
