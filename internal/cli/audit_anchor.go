package cli

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/coconut-os/coconut/internal/anchor"
)

// anchorFlags are `audit verify`'s anchor options.
type anchorFlags struct {
	sealKey, tpmSocket string
	skipTPM            bool
}

// checkers reads whatever anchors the chain has and returns the checks to
// run over it, plus one line per anchor saying what was (not) checked. A
// TPM-anchored chain whose TPM cannot be read fails unless --skip-tpm.
func (a *anchorFlags) checkers(stateDir, chainDir string) ([]*anchor.Checker, []string, error) {
	var cs []*anchor.Checker
	var notes []string
	if nonEmpty(filepath.Join(chainDir, anchor.JournalName)) {
		if a.skipTPM {
			notes = append(notes, "tpm anchor: NOT checked (--skip-tpm)")
		} else {
			tpm, err := anchor.DialTPM(a.tpmSocket)
			if err != nil {
				return nil, nil, fmt.Errorf("the chain is anchored in a TPM: %w (give --tpm-socket, or --skip-tpm to check without it)", err)
			}
			defer tpm.Close()
			ents, un, err := anchor.ReadTPM(chainDir, tpm, 0)
			if err != nil {
				return nil, nil, err
			}
			if un != nil {
				ents = append(ents, *un) // journaled before a crash: must match too
			}
			cs = append(cs, anchor.NewChecker("TPM anchor", ents))
			notes = append(notes, fmt.Sprintf("tpm anchor: OK, the TPM vouches for %d anchored checkpoints", len(ents)))
		}
	}
	if nonEmpty(filepath.Join(chainDir, anchor.SealsName)) {
		if a.sealKey == "" {
			notes = append(notes, "fss seals: NOT checked (give --seal-key SEED)")
		} else {
			seed, err := anchor.ParseSeed(a.sealKey)
			if err != nil {
				return nil, nil, err
			}
			ents, err := anchor.VerifySeals(chainDir, filepath.Join(stateDir, "keys"), seed)
			if err != nil {
				return nil, nil, err
			}
			cs = append(cs, anchor.NewChecker("seal", ents))
			notes = append(notes, fmt.Sprintf("fss seals: OK, %d seals made with keys from the seed", len(ents)))
		}
	} else if a.sealKey != "" {
		return nil, nil, fmt.Errorf("%w: --seal-key given but the chain has no seals", anchor.ErrMismatch)
	}
	return cs, notes, nil
}

func nonEmpty(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Size() > 0
}
