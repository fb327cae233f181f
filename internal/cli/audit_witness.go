package cli

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/coconut-os/coconut/internal/anchor"
	"github.com/coconut-os/coconut/internal/checkpoint"
	"github.com/coconut-os/coconut/internal/statedir"
	"github.com/coconut-os/coconut/internal/witness"
)

// witnessFlags are `audit verify --witness VKEY` (issue 17), repeatable.
type witnessFlags struct{ vkeys []string }

// witnessCheck is one witness's part in a verify: its newest stored
// cosignature becomes an anchor entry (the chain's root at that size must
// be the cosigned root), and afterwards it must cover the latest
// checkpoint.
type witnessCheck struct {
	found   witness.Found
	checker *anchor.Checker // nil when the witness cosigned nothing
	what    string
}

// witnessResult is one witness in verify's --json "witnesses".
type witnessResult struct {
	Name         string     `json:"name"`
	OK           bool       `json:"ok"`
	CosignedSize uint64     `json:"cosigned_size"`
	Cosignatures int        `json:"cosignatures"`
	Smallest     uint64     `json:"smallest_cosigned_size,omitempty"`
	CosignedAt   *time.Time `json:"cosigned_at,omitempty"`
	Fork         bool       `json:"fork,omitempty"`
	Reason       string     `json:"reason,omitempty"`
}

// keys parses each --witness value: a note verifier key, or @FILE holding one.
func (w *witnessFlags) keys() ([]witness.Key, error) {
	var ks []witness.Key
	for _, v := range w.vkeys {
		s := v
		if f, ok := strings.CutPrefix(v, "@"); ok {
			b, err := os.ReadFile(f)
			if err != nil {
				return nil, usagef("--witness %s: %v", v, err)
			}
			s = string(b)
		}
		k, err := witness.ParseKey(s)
		if err != nil {
			return nil, usagef("--witness %s: %v", v, err)
		}
		ks = append(ks, k)
	}
	return ks, nil
}

// checks reads the cosignature log for the keys and returns one check
// each; the checkers go into the verify pass with the anchors'.
func (w *witnessFlags) checks(stateDir string, pub ed25519.PublicKey) ([]*witnessCheck, error) {
	ks, err := w.keys()
	if err != nil || len(ks) == 0 {
		return nil, err
	}
	found, err := witness.Newest(filepath.Join(statedir.Chain(stateDir), witness.CosignaturesName), pub, ks)
	if err != nil {
		return nil, err
	}
	var cs []*witnessCheck
	for _, f := range found {
		c := &witnessCheck{found: f, what: fmt.Sprintf("witness %s's cosigned checkpoint", f.Key.Name)}
		if n := f.Newest; n != nil {
			c.checker = anchor.NewChecker(c.what, []anchor.Entry{{Size: n.Checkpoint.Size, Root: n.Checkpoint.Root, Time: n.Time}})
		}
		cs = append(cs, c)
	}
	return cs, nil
}

// results says, after the verify pass (err its outcome), what each
// witness vouches for; failed is the first witness's failure.
func witnessResults(cs []*witnessCheck, latest checkpoint.Checkpoint, err error) (out []witnessResult, failed error) {
	for _, c := range cs {
		f := c.found
		r := witnessResult{Name: f.Key.Name, Cosignatures: f.Count, Smallest: f.Smallest}
		if f.Newest != nil {
			r.CosignedSize = f.Newest.Checkpoint.Size
			if !f.Newest.Time.IsZero() {
				t := f.Newest.Time
				r.CosignedAt = &t
			}
		}
		var why error
		switch {
		case f.Newest == nil:
			why = fmt.Errorf("witness %s has cosigned no checkpoint of this chain (no entry of its key in chain/%s)", f.Key.Name, witness.CosignaturesName)
		case err != nil && strings.Contains(err.Error(), c.what):
			r.Fork = true
			why = fmt.Errorf("FORK: witness %s cosigned a checkpoint of size %d that this chain does not match: %w", f.Key.Name, r.CosignedSize, err)
		case err != nil:
			// The chain's own failure is the one reported.
			r.Reason = "not checked: the chain does not verify"
			out = append(out, r)
			continue
		case r.CosignedSize < latest.Size:
			why = fmt.Errorf("witness %s has not cosigned the latest checkpoint (size %d): its newest cosignature is of size %d (%d cosignatures, sizes %d..%d); rows %d..%d are not witnessed (a running coconutd submits in the background: see coconut doctor)",
				f.Key.Name, latest.Size, r.CosignedSize, f.Count, f.Smallest, r.CosignedSize, r.CosignedSize+1, latest.Size)
		case r.CosignedSize > latest.Size:
			why = fmt.Errorf("witness %s cosigned a checkpoint of size %d, past the latest stored checkpoint (%d): checkpoints were removed from chain/checkpoints.log", f.Key.Name, r.CosignedSize, latest.Size)
		}
		r.OK = why == nil
		if why != nil {
			r.Reason = why.Error()
			if failed == nil || (r.Fork && !errors.Is(failed, errFork)) {
				if r.Fork {
					why = fmt.Errorf("%w%s", errFork, strings.TrimPrefix(why.Error(), "FORK"))
				}
				failed = why
			}
		}
		out = append(out, r)
	}
	return out, failed
}

// errFork marks a witness failure that is a fork.
var errFork = errors.New("FORK")

func printWitnessResults(rs []witnessResult) {
	for _, r := range rs {
		if !r.OK {
			continue
		}
		at := ""
		if r.CosignedAt != nil {
			at = " at " + r.CosignedAt.Local().Format(time.RFC3339)
		}
		fmt.Printf("witness %s: OK, cosigned the latest checkpoint (size %d)%s; %d cosignatures stored, sizes %d..%d\n", r.Name, r.CosignedSize, at, r.Cosignatures, r.Smallest, r.CosignedSize)
	}
}
