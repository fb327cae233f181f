package checkpoint

import (
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/coconut-os/coconut/internal/audit"
)

// PlanDelete is audit.PlanDelete bounded by the latest signed checkpoint
// (verified with pub): a row no checkpoint covers yet is never deleted.
func PlanDelete(chainDir string, pub ed25519.PublicKey, before time.Time) (audit.DeletePlan, error) {
	cps, _, err := ReadCheckpoints(chainDir, pub)
	if err != nil {
		return audit.DeletePlan{}, err
	}
	var covered uint64
	if len(cps) > 0 {
		covered = cps[len(cps)-1].Size
	}
	return audit.PlanDelete(chainDir, before, covered)
}

// DeletePrefix carries out plan (from PlanDelete) on the open chain c:
// it finishes a deletion a crash interrupted, verifies the whole chain
// and every checkpoint (refusing to delete anything from a broken chain),
// takes the head and Merkle compact range at plan.Last from that same
// walk, and hands them to c.DeletePrefix, which records them before any
// file goes.
func DeletePrefix(c *audit.Chain, pub ed25519.PublicKey, plan audit.DeletePlan, by string) (audit.DeleteReport, error) {
	rep := audit.DeleteReport{DeletePlan: plan}
	if err := audit.FinishDelete(c.Dir()); err != nil {
		return rep, err
	}
	if len(plan.Segments) == 0 {
		return rep, nil
	}
	_, vrep, _, err := VerifyChainWith(c.Dir(), pub, VerifyOptions{RangeAt: plan.Last})
	if err != nil {
		return rep, fmt.Errorf("delete refused, the chain does not verify: %w", err)
	}
	if vrep.At == nil || vrep.At.Size != plan.Last {
		return rep, fmt.Errorf("%w: delete: verify did not reach seq %d", ErrMismatch, plan.Last)
	}
	// The plan is the caller's: what it names must still be what a plan
	// made now would allow (every row under the latest signed checkpoint,
	// every segment older than the cut), never more.
	if plan.Last > vrep.Latest.Size {
		return rep, fmt.Errorf("%w: delete: rows up to %d are not all covered by the latest signed checkpoint (size %d)", ErrMismatch, plan.Last, vrep.Latest.Size)
	}
	now, err := audit.PlanDelete(c.Dir(), plan.Before, vrep.Latest.Size)
	if err != nil {
		return rep, err
	}
	if plan.First != now.First || plan.Last > now.Last || len(plan.Segments) > len(now.Segments) {
		return rep, fmt.Errorf("delete: the plan (rows %d..%d) is no longer what the chain allows (rows %d..%d): plan again", plan.First, plan.Last, now.First, now.Last)
	}
	var head [audit.HeadSize]byte
	b, err := hex.DecodeString(vrep.At.Head)
	if err != nil || len(b) != audit.HeadSize {
		return rep, fmt.Errorf("%w: delete: head at %d", ErrMismatch, plan.Last)
	}
	copy(head[:], b)
	return c.DeletePrefix(plan, vrep.At.Range, head, by)
}
