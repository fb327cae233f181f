package anchor

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/coconut-os/coconut/internal/atomicfile"
)

// The TPM's owner hierarchy ships with an empty authorization: anyone on
// the host who can reach the TPM could define, or undefine, NV indices in
// it. coconut init takes it: a random secret becomes the owner auth and is
// kept here, root-only, for the commands that need it (defining the NV
// index). It is hex text, so an administrator can hand it to tpm2-tools:
// tpm2_changeauth -c owner -p hex:$(cat FILE).

// OwnerAuthName is the owner-auth secret's file in the state dir's keys/.
const OwnerAuthName = "tpm-owner.auth"

// ErrOwnerAuth means the TPM's owner authorization is not the one coconut
// holds: set by someone else, or changed since.
var ErrOwnerAuth = errors.New("tpm owner authorization")

// OwnerAuthPath is where the owner-auth secret lives under keysDir.
func OwnerAuthPath(keysDir string) string { return filepath.Join(keysDir, OwnerAuthName) }

// ReadOwnerAuth returns the secret coconut set as the owner auth, nil if
// it never set one. A file others could read is refused: the secret
// guards the TPM's owner hierarchy.
func ReadOwnerAuth(keysDir string) ([]byte, error) {
	path := OwnerAuthPath(keysDir)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s is mode %v: it must be readable by root only (chmod 600 %s)", ErrOwnerAuth, path, st.Mode().Perm(), path)
	}
	b := make([]byte, 256)
	n, _ := f.Read(b)
	secret, err := hex.DecodeString(strings.TrimSpace(string(b[:n])))
	if err != nil || len(secret) == 0 || len(secret) > 32 {
		return nil, fmt.Errorf("%w: %s does not hold a hex secret of 1 to 32 bytes", ErrOwnerAuth, path)
	}
	return secret, nil
}

// ownerAuthSet reads TPMA_PERMANENT.ownerAuthSet: whether the owner
// hierarchy's authorization is non-empty.
func ownerAuthSet(t transport.TPM) (bool, error) {
	rsp, err := tpm2.GetCapability{Capability: tpm2.TPMCapTPMProperties, Property: uint32(tpm2.TPMPTPermanent), PropertyCount: 1}.Execute(t)
	if err != nil {
		return false, fmt.Errorf("%w: read permanent attributes: %w", ErrTPM, err)
	}
	props, err := rsp.CapabilityData.Data.TPMProperties()
	if err != nil {
		return false, fmt.Errorf("%w: permanent attributes: %w", ErrTPM, err)
	}
	for _, p := range props.TPMProperty {
		if p.Property == tpm2.TPMPTPermanent {
			return p.Value&1 != 0, nil // bit 0: ownerAuthSet
		}
	}
	return false, fmt.Errorf("%w: the TPM did not report its permanent attributes", ErrTPM)
}

func changeOwnerAuth(t transport.TPM, old, new []byte) error {
	_, err := tpm2.HierarchyChangeAuth{
		AuthHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(old)},
		NewAuth:    tpm2.TPM2BAuth{Buffer: new},
	}.Execute(t)
	return err
}

// EnsureOwnerAuth makes the TPM's owner auth the secret kept in keysDir:
// it generates and sets one when the owner auth is empty (the secret is
// written first, so a crash in between leaves a secret the next run sets),
// and checks the kept one still opens the owner hierarchy otherwise. It
// reports whether it set the auth now. An owner auth set by someone else
// is an ErrOwnerAuth naming the fix, never skipped.
func EnsureOwnerAuth(t transport.TPM, keysDir string) (set bool, err error) {
	path := OwnerAuthPath(keysDir)
	secret, err := ReadOwnerAuth(keysDir)
	if err != nil {
		return false, err
	}
	isSet, err := ownerAuthSet(t)
	if err != nil {
		return false, err
	}
	if isSet {
		if secret == nil {
			return false, fmt.Errorf("%w: the TPM's owner authorization is already set, not by coconut (there is no %s). Either write it there (hex, mode 600) or clear it with `tpm2_changeauth -c owner -p OLD`, then run coconut init again", ErrOwnerAuth, path)
		}
		// Setting it to itself proves the secret without changing
		// anything (hierarchy auths are not dictionary-attack counted).
		if err := changeOwnerAuth(t, secret, secret); err != nil {
			return false, fmt.Errorf("%w: the TPM's owner authorization is set but %s does not open it (%w): it was changed since coconut set it. Put the current one there (hex, mode 600) or clear it with `tpm2_changeauth -c owner -p OLD`, then run coconut init again", ErrOwnerAuth, path, err)
		}
		return false, nil
	}
	if secret == nil {
		secret = make([]byte, 32)
		if _, err := rand.Read(secret); err != nil {
			return false, err
		}
		if err := os.MkdirAll(keysDir, 0o700); err != nil {
			return false, err
		}
		if err := atomicfile.Write(path, []byte(hex.EncodeToString(secret)+"\n"), 0o600); err != nil {
			return false, err
		}
	}
	if err := changeOwnerAuth(t, nil, secret); err != nil {
		return false, fmt.Errorf("%w: set the owner authorization: %w", ErrTPM, err)
	}
	return true, nil
}
