package anchor

import (
	"crypto/ed25519"
	"errors"
	"slices"
	"sort"

	"github.com/coconut-os/coconut/internal/audit"
	"github.com/coconut-os/coconut/internal/checkpoint"
)

// VerifyChain is checkpoint.VerifyChain (BLAKE3 chain and signed
// checkpoints) that also runs each checker over the chain in the same
// pass, and reports the first failure with the seq it names.
func VerifyChain(chainDir string, pub ed25519.PublicKey, checkers ...*Checker) (audit.VerifyReport, checkpoint.Report, error) {
	vr, cr, _, err := VerifyChainWith(chainDir, pub, checkpoint.VerifyOptions{}, checkers...)
	return vr, cr, err
}

// VerifyChainWith is VerifyChain with checkpoint.VerifyOptions (workers,
// incremental). In an incremental run, the anchored sizes up to the
// verified checkpoint were checked by the run that recorded it.
func VerifyChainWith(chainDir string, pub ed25519.PublicKey, o checkpoint.VerifyOptions, checkers ...*Checker) (audit.VerifyReport, checkpoint.Report, *checkpoint.Verified, error) {
	var skip uint64
	if o.Since != nil {
		skip = o.Since.Size
	}
	if p, err := audit.Pruned(chainDir); err == nil && p != nil && p.Last > skip {
		skip = p.Last // anchored sizes inside a deleted prefix cannot be re-hashed (checkpoint.VerifyChainWith starts after it)
	}
	var sizes []uint64
	for _, c := range checkers {
		if skip > 0 {
			c.skipTo(skip)
		}
		for _, e := range c.entries {
			sizes = append(sizes, e.Size)
		}
	}
	sort.Slice(sizes, func(i, j int) bool { return sizes[i] < sizes[j] })
	o.Extra = &checkpoint.Marks{Sizes: slices.Compact(sizes), Visit: func(size uint64, root [checkpoint.HashSize]byte) error {
		for _, c := range checkers {
			if err := c.Visit(size, func() [checkpoint.HashSize]byte { return root }); err != nil {
				return err
			}
		}
		return nil
	}}
	vr, cr, ver, err := checkpoint.VerifyChainWith(chainDir, pub, o)
	if err != nil {
		return vr, cr, nil, err
	}
	for _, c := range checkers {
		if err := c.Done(vr.Records); err != nil {
			var se *audit.SeqError
			if errors.As(err, &se) {
				vr.FirstBad = se.Seq
			}
			vr.Reason = err.Error()
			return vr, cr, nil, err
		}
	}
	return vr, cr, ver, nil
}
