package anchor

import "errors"

var (
	// ErrMismatch means the anchor disagrees with the chain or its journal:
	// anchored history was rewritten, dropped or rolled back.
	ErrMismatch = errors.New("anchor mismatch")
	// ErrBadJournal means anchor.log or seals.log is malformed.
	ErrBadJournal = errors.New("corrupt anchor journal")
	// ErrBadSeal means a forward-secure seal does not verify.
	ErrBadSeal = errors.New("bad seal")
	// ErrBadKey means the sealing key file or the seed is malformed.
	ErrBadKey = errors.New("bad sealing key")
	// ErrNoTPM means no TPM could be reached.
	ErrNoTPM = errors.New("no tpm")
	// ErrTPM means the TPM refused a command.
	ErrTPM = errors.New("tpm command failed")
)
