package anchor

import (
	"crypto/ed25519"
	"errors"

	"github.com/coconut-os/coconut/internal/audit"
	"github.com/coconut-os/coconut/internal/checkpoint"
)

// VerifyChain is checkpoint.VerifyChain (BLAKE3 chain and signed
// checkpoints) that also runs each checker over the chain in the same
// pass, and reports the first failure with the seq it names.
func VerifyChain(chainDir string, pub ed25519.PublicKey, checkers ...*Checker) (audit.VerifyReport, checkpoint.Report, error) {
	vr, cr, err := checkpoint.VerifyChain(chainDir, pub, func(seq uint64, root func() [checkpoint.HashSize]byte) error {
		for _, c := range checkers {
			if err := c.Visit(seq, root); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return vr, cr, err
	}
	for _, c := range checkers {
		if err := c.Done(vr.Records); err != nil {
			var se *audit.SeqError
			if errors.As(err, &se) {
				vr.FirstBad = se.Seq
			}
			vr.Reason = err.Error()
			return vr, cr, err
		}
	}
	return vr, cr, nil
}
