package audit

import (
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeRange stands for the Merkle compact range the checkpoint package
// computes (this package only keeps it; internal/checkpoint's tests check
// the real one against signed roots).
var fakeRange = [][]byte{make([]byte, 32), make([]byte, 32)}

func planHead(t *testing.T, p DeletePlan) [HeadSize]byte {
	t.Helper()
	var h [HeadSize]byte
	b, err := hex.DecodeString(p.Segments[len(p.Segments)-1].Head)
	if err != nil || len(b) != HeadSize {
		t.Fatalf("plan head: %v", err)
	}
	copy(h[:], b)
	return h
}

func deleteChain(t *testing.T, opts Options) (string, *Chain, DeletePlan) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "chain")
	opts.SegmentBytes = 4096
	c := openT(t, dir, opts)
	fill(t, c, 400)
	plan, err := PlanDelete(dir, time.Now(), 250)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Segments) < 2 || plan.First != 1 || plan.Last > 250 || plan.HeldBack == 0 {
		t.Fatalf("plan: %+v", plan)
	}
	return dir, c, plan
}

// TestDeletePrefixReads: after a deletion the chain starts past it:
// Verify from the pruned head, queries (scan and on-disk index) return
// only later rows, a read of a deleted row names the deletion, and the
// active segment is never planned.
func TestDeletePrefixReads(t *testing.T) {
	idx := filepath.Join(t.TempDir(), "index")
	dir, c, plan := deleteChain(t, Options{IndexDir: idx})
	defer c.Close()
	c.WaitIndexed(10 * time.Second)
	all, err := PlanDelete(dir, time.Now(), 1<<40)
	if err != nil {
		t.Fatal(err)
	}
	if segs, _ := listSegments(dir); all.Last >= segs[len(segs)-1].first {
		t.Fatalf("plan reaches the active segment: last %d, active from %d", all.Last, segs[len(segs)-1].first)
	}
	rep, err := c.DeletePrefix(plan, fakeRange, planHead(t, plan), "uid 0 (root)")
	if err != nil {
		t.Fatal(err)
	}
	if rep.Row != 401 || rep.Pruned.Last != plan.Last || rep.Rows != plan.Last {
		t.Fatalf("report: %+v", rep)
	}
	for _, s := range plan.Segments {
		if n := globN(t, filepath.Join(dir, segName(s.First)+"*")); n != 0 {
			t.Fatalf("segment %d still has %d files", s.First, n)
		}
	}
	vr, err := Verify(dir)
	if err != nil || vr.Deleted != plan.Last || vr.Records != 401 {
		t.Fatalf("Verify: %+v %v", vr, err)
	}
	err = c.Payloads(0, 10, func(uint64, []byte) error { return nil })
	var de *DeletedError
	if !errors.As(err, &de) || de.Seq != 1 || !errors.Is(err, ErrDeleted) || !strings.Contains(err.Error(), "row 1 was deleted on") {
		t.Fatalf("Payloads of deleted rows: %v", err)
	}
	aid := uint64(101)
	for _, q := range []Query{{AID: &aid}, {Type: "agent.spawn"}, {AfterSeq: 3}, {Since: t0}} {
		got, err := c.Query(q)
		if err != nil || len(got) == 0 || got[0].Seq <= plan.Last {
			t.Fatalf("query %+v: %d rows, %v", q, len(got), err)
		}
	}
	got, err := c.Query(Query{Type: TypeAuditDelete})
	if err != nil || len(got) != 1 || got[0].Detail["last"] != fmt.Sprint(plan.Last) || got[0].Detail["by"] != "uid 0 (root)" {
		t.Fatalf("audit.delete row: %+v %v", got, err)
	}
	// The chain reopens from the pruned record, every segment checked.
	c.Close()
	c2 := openT(t, dir, Options{VerifyAll: true})
	if seq, _ := c2.Head(); seq != 401 || c2.Pruned() == nil {
		t.Fatalf("reopened: head %d, pruned %+v", seq, c2.Pruned())
	}
	c2.Close()
}

// TestDeletePrefixCrash: a crash at each step leaves a chain that
// verifies, and the deletion completes on re-run.
func TestDeletePrefixCrash(t *testing.T) {
	for _, step := range []string{"record", "remove"} {
		t.Run(step, func(t *testing.T) {
			dir, c, plan := deleteChain(t, Options{})
			deleteFault = func(s string) error {
				if s == step {
					return errors.New("crash at " + s)
				}
				return nil
			}
			_, err := c.DeletePrefix(plan, fakeRange, planHead(t, plan), "test")
			deleteFault = func(string) error { return nil }
			if err == nil {
				t.Fatal("no crash")
			}
			c.Close()
			vr, err := Verify(dir)
			if err != nil {
				t.Fatalf("after a crash at %s: %+v %v", step, vr, err)
			}
			wantDeleted := uint64(0)
			if step == "remove" {
				wantDeleted = plan.Last // recorded; files still there, no longer read
			}
			if vr.Deleted != wantDeleted {
				t.Fatalf("after a crash at %s: deleted %d, want %d", step, vr.Deleted, wantDeleted)
			}
			if n := globN(t, filepath.Join(dir, segName(1)+"*")); n != 1 {
				t.Fatalf("after a crash at %s: %d files of the first segment", step, n)
			}
			// Re-run, as `coconut audit archive --delete` does.
			c = openT(t, dir, Options{})
			defer c.Close()
			if err := FinishDelete(dir); err != nil {
				t.Fatal(err)
			}
			p2, err := PlanDelete(dir, time.Now(), plan.Last)
			if err != nil {
				t.Fatal(err)
			}
			if step == "record" {
				if p2.First != 1 || p2.Last != plan.Last {
					t.Fatalf("re-plan: %+v", p2)
				}
				if _, err := c.DeletePrefix(p2, fakeRange, planHead(t, p2), "test"); err != nil {
					t.Fatal(err)
				}
			} else if len(p2.Segments) != 0 || p2.First != plan.Last+1 {
				t.Fatalf("re-plan after the record: %+v", p2)
			}
			if n := globN(t, filepath.Join(dir, segName(1)+"*")); n != 0 {
				t.Fatalf("re-run left %d files of the first segment", n)
			}
			if vr, err := Verify(dir); err != nil || vr.Deleted != plan.Last {
				t.Fatalf("after the re-run: %+v %v", vr, err)
			}
		})
	}
}

// TestDeleteManifestChecks: a manifest whose deleted entries are not a
// prefix, or whose pruned record is not where they end, is refused.
func TestDeleteManifestChecks(t *testing.T) {
	dir, c, plan := deleteChain(t, Options{})
	if _, err := c.DeletePrefix(plan, fakeRange, planHead(t, plan), "test"); err != nil {
		t.Fatal(err)
	}
	c.Close()
	m, err := ReadArchive(dir)
	if err != nil {
		t.Fatal(err)
	}
	bad := []func(m *ArchiveManifest){
		func(m *ArchiveManifest) { m.Segments[0].Deleted = nil },
		func(m *ArchiveManifest) { m.Pruned = nil },
		func(m *ArchiveManifest) { m.Pruned.Last-- },
		func(m *ArchiveManifest) { m.Pruned.Range = nil },
		func(m *ArchiveManifest) { m.Segments = m.Segments[1:] },
	}
	for i, f := range bad {
		cp := m
		cp.Segments = append([]ArchivedSegment(nil), m.Segments...)
		p := *m.Pruned
		cp.Pruned = &p
		f(&cp)
		if err := writeArchive(dir, cp); !errors.Is(err, ErrBadArchive) {
			t.Errorf("case %d: %v", i, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, ArchiveName)); err != nil {
		t.Fatal(err)
	}
}

// TestDeletedBackupSurvives: a copy of a deleted segment the user keeps
// (here: saved before the delete, in a directory later given to relink)
// is never relinked into the chain nor removed by a background pass.
func TestDeletedBackupSurvives(t *testing.T) {
	dir, c, plan := deleteChain(t, Options{})
	// Compressed first, so the backup is the very file the manifest lists.
	c.Close()
	if _, err := CompressSealed(dir); err != nil {
		t.Fatal(err)
	}
	m, _ := ReadArchive(dir)
	backup := t.TempDir()
	for _, a := range m.Segments {
		if a.Last <= plan.Last {
			b, err := os.ReadFile(a.path(dir))
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(backup, a.Name), b, 0o600)
		}
	}
	c = openT(t, dir, Options{SegmentBytes: 4096})
	if _, err := c.DeletePrefix(plan, fakeRange, planHead(t, plan), "test"); err != nil {
		t.Fatal(err)
	}
	c.Close()
	got, err := Relink(dir, backup)
	if err != nil || len(got) != 0 {
		t.Fatalf("relink to a backup of deleted segments: %v, %v", got, err)
	}
	if _, err := CompressSealed(dir); err != nil {
		t.Fatal(err)
	}
	if n := globN(t, filepath.Join(backup, "*.seg.zst")); n == 0 {
		t.Fatal("the backup of the deleted segments was removed")
	}
	if m, _ := ReadArchive(dir); m.Pruned == nil || m.Pruned.Last != plan.Last {
		t.Fatalf("pruned record %+v", m.Pruned)
	}
}
