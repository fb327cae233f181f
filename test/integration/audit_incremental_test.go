package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestAuditVerifyIncremental: a verify records the checkpoint it checked;
// after the daemon wrote more rows and checkpoints, --incremental verifies
// only those, and a row altered among them is caught.
func TestAuditVerifyIncremental(t *testing.T) {
	e := newEnv(t)
	e.stop(syscall.SIGTERM) // a stop signs a checkpoint at the head
	type verifyOut struct {
		OK             bool   `json:"ok"`
		Records        uint64 `json:"records"`
		CheckpointSize uint64 `json:"checkpoint_size"`
		Incremental    bool   `json:"incremental"`
		VerifiedAfter  uint64 `json:"verified_after"`
		FirstBad       uint64 `json:"first_bad"`
	}
	verify := func(args ...string) (verifyOut, int) {
		out, _, code := e.cli(append([]string{"audit", "verify", "--json"}, args...)...)
		var v verifyOut
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			t.Fatalf("audit verify %v: %q: %v", args, out, err)
		}
		return v, code
	}
	first, code := verify()
	if code != 0 || !first.OK || first.CheckpointSize == 0 {
		t.Fatalf("full verify: %+v exit %d", first, code)
	}
	if _, err := os.Stat(filepath.Join(e.state, "verified-checkpoint.json")); err != nil {
		t.Fatalf("no verified checkpoint recorded: %v", err)
	}
	e.start()
	e.stop(syscall.SIGTERM)
	inc, code := verify("--incremental")
	if code != 0 || !inc.OK || !inc.Incremental || inc.VerifiedAfter != first.CheckpointSize || inc.Records <= first.Records {
		t.Fatalf("incremental verify: %+v exit %d (before: %+v)", inc, code, first)
	}
	// Alter the last row (inside a record, CRC left): the incremental run sees it.
	segs, _ := filepath.Glob(filepath.Join(e.state, "chain", "*.seg"))
	last := segs[len(segs)-1]
	b, err := os.ReadFile(last)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-200] ^= 1
	os.WriteFile(last, b, 0o600)
	bad, code := verify("--incremental")
	if code == 0 || bad.OK || bad.FirstBad <= inc.VerifiedAfter {
		t.Fatalf("altered row passed the incremental verify: %+v exit %d", bad, code)
	}
}
