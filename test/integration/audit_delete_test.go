package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coconut-os/coconut/internal/audit"
)

// TestAuditDelete: rows of two agents over several small segments,
// signed by coconutd; `coconut audit archive --delete --before` (asked
// with --yes, the daemon stopped) deletes the sealed prefix the latest
// checkpoint covers; verify passes and says how many rows went; the
// restarted daemon proves a later row, refuses a deleted one naming the
// deletion, and answers a query by AID across the deleted range with the
// later rows only.
func TestAuditDelete(t *testing.T) {
	e := newEnv(t)
	chainDir := e.smallSegments(3000, func(i int) uint64 { return uint64(7 + i%2) })
	head := e.rows("--limit", "1", "--type", "daemon.start")
	if len(head) == 0 {
		t.Fatal("no daemon.start row")
	}
	// A checkpoint covering every row so far: prove the restart's own row.
	e.must("audit", "prove", strconv.FormatUint(head[len(head)-1].Seq, 10), "--out", filepath.Join(e.dir, "p0.json"))
	e.stop(syscall.SIGTERM)

	before := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	if _, errs, code := e.cli("audit", "archive", "--delete", "--before", before, "--json"); code == 0 || !strings.Contains(errs, "--yes") {
		t.Fatalf("--json without --yes: exit %d %s", code, errs)
	}
	if _, errs, code := e.cli("audit", "archive", "--delete", "--before", before); code == 0 || !strings.Contains(errs, "--yes") {
		t.Fatalf("no terminal, no --yes: exit %d %s", code, errs)
	}
	out := e.must("audit", "archive", "--delete", "--before", before, "--yes", "--json")
	var rep audit.DeleteReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.First != 1 || rep.Last < 1000 || len(rep.Segments) < 3 || rep.Row == 0 || rep.Pruned == nil {
		t.Fatalf("delete: %q %v", out, err)
	}
	for _, s := range rep.Segments {
		if m, _ := filepath.Glob(filepath.Join(chainDir, fmt.Sprintf("%020d.seg*", s.First))); len(m) != 0 {
			t.Fatalf("deleted segment's files still there: %v", m)
		}
	}
	var v struct {
		OK             bool   `json:"ok"`
		Records        uint64 `json:"records"`
		DeletedRows    uint64 `json:"deleted_rows"`
		DeletedThrough uint64 `json:"deleted_through"`
	}
	got := e.must("audit", "verify", "--json")
	if err := json.Unmarshal([]byte(got), &v); err != nil || !v.OK || v.DeletedRows != rep.Last || v.DeletedThrough != rep.Last {
		t.Fatalf("verify after delete: %s %v", got, err)
	}

	e.start()
	later := rep.Last + 10
	proof := filepath.Join(e.dir, "proof.json")
	e.must("audit", "prove", strconv.FormatUint(later, 10), "--out", proof)
	_, errs, code := e.cli("audit", "prove", "5")
	if code == 0 || !strings.Contains(errs, "row 5 was deleted on") {
		t.Fatalf("prove of a deleted row: exit %d %s", code, errs)
	}
	for _, aid := range []string{"7", "8"} {
		rs := e.rows("--aid", aid)
		if len(rs) == 0 || rs[0].Seq <= rep.Last {
			t.Fatalf("query --aid %s: %d rows, first %+v", aid, len(rs), rs)
		}
	}
	e.stop(syscall.SIGTERM)
	if got := e.must("audit", "verify", "--proof", proof, "--json"); !jsonOK(t, got) {
		t.Fatalf("proof of a row after the deleted prefix: %s", got)
	}
	if _, err := os.Stat(filepath.Join(chainDir, audit.ArchiveName)); err != nil {
		t.Fatal(err)
	}
}
