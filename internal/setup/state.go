package setup

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/coconut-os/coconut/internal/anchor"
	"github.com/coconut-os/coconut/internal/sign"
	"github.com/coconut-os/coconut/internal/statedir"
)

// hostKey makes the host's attestation key (the daemon would make it at
// its first start; init makes it now so its id can be shown and pinned).
func hostKey(stateDir string, dry bool) Step {
	pub := statedir.HostPub(stateDir)
	prefix := pub[:len(pub)-len(".pub")]
	if k, err := sign.LoadPublicKey(pub); err == nil {
		return Step{Name: "host key", Status: Unchanged, Detail: fmt.Sprintf("%s (%s)", pub, sign.KeyID(k))}
	}
	if dry {
		return Step{Name: "host key", Status: WouldCreate, Detail: prefix + ".key"}
	}
	k, err := sign.GenerateKey(prefix)
	if err != nil {
		return failed("host key", err)
	}
	return Step{Name: "host key", Status: Created, Detail: fmt.Sprintf("%s (%s)", pub, sign.KeyID(k))}
}

// provisionAnchor readies where checkpoints are anchored. TPM: the owner
// hierarchy's auth is taken (anchor.EnsureOwnerAuth) and the NV
// index is defined (OpenTPM defines it when missing and checks its
// attributes when present). FSS: the first sealing key and its
// verification seed are made, and the seed returned to be shown once.
func provisionAnchor(stateDir, kind, tpmSocket string, dry bool) (Step, string) {
	chain := statedir.Chain(stateDir)
	keys := filepath.Join(stateDir, "keys")
	if kind == "tpm" {
		if dry {
			return Step{Name: "audit anchor", Status: WouldCreate, Detail: fmt.Sprintf("TPM NV index %#x on %s (defined if missing) and its owner auth (set if empty)", uint32(anchor.DefaultIndex), anchor.DeviceTPM)}, ""
		}
		if err := os.MkdirAll(chain, 0o700); err != nil {
			return failed("audit anchor", err), ""
		}
		t, err := anchor.DialTPM(tpmSocket)
		if err != nil {
			return failed("audit anchor", err), ""
		}
		defer t.Close()
		// The owner hierarchy first: its auth, set now or recognised as
		// ours, is what defines the index.
		set, err := anchor.EnsureOwnerAuth(t, keys)
		if err != nil {
			return failed("audit anchor", err), ""
		}
		owner, err := anchor.ReadOwnerAuth(keys)
		if err != nil {
			return failed("audit anchor", err), ""
		}
		a, err := anchor.OpenTPM(anchor.TPMConfig{TPM: t, ChainDir: chain, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), OwnerAuth: owner})
		if err != nil {
			return failed("audit anchor", err), ""
		}
		a.Close()
		where := anchor.DeviceTPM
		if tpmSocket != "" {
			where = tpmSocket
		}
		ownerNote := "owner auth already coconut's"
		if set {
			ownerNote = "owner auth set, its secret in " + anchor.OwnerAuthPath(keys) + " (root only)"
		}
		return Step{Name: "audit anchor", Status: Ready, Detail: fmt.Sprintf("TPM NV index %#x on %s (defined, attributes checked; %s)", uint32(anchor.DefaultIndex), where, ownerNote)}, ""
	}
	if _, err := os.Stat(filepath.Join(keys, anchor.KeyName)); err == nil {
		return Step{Name: "audit anchor", Status: Unchanged, Detail: "forward-secure sealing already started (its seed was shown then)"}, ""
	} else if !errors.Is(err, fs.ErrNotExist) {
		return failed("audit anchor", err), ""
	}
	if dry {
		return Step{Name: "audit anchor", Status: WouldCreate, Detail: "forward-secure sealing key and verification seed"}, ""
	}
	if err := os.MkdirAll(chain, 0o700); err != nil {
		return failed("audit anchor", err), ""
	}
	f, seed, err := anchor.OpenFSS(keys, chain)
	if err != nil {
		return failed("audit anchor", err), ""
	}
	f.Close()
	return Step{Name: "audit anchor", Status: Created, Detail: "forward-secure sealing: verification seed below, shown once"}, seed
}

// trustUserKey trusts pub for uid's own spawns (not for every user: a
// key added on a user's behalf signs only what that user runs).
func trustUserKey(stateDir string, pub ed25519.PublicKey, uid uint32, user string, dry bool) Step {
	id := sign.KeyID(pub)
	t, err := sign.OpenTrust(statedir.Trust(stateDir))
	if err != nil {
		return failed("trust", err)
	}
	if e, ok := t.Lookup(id); ok && (e.AddedBy == 0 || e.AddedBy == uid) {
		return Step{Name: "trust", Status: Unchanged, Detail: fmt.Sprintf("%s trusted for %s's spawns", id, user)}
	}
	if dry {
		return Step{Name: "trust", Status: WouldCreate, Detail: fmt.Sprintf("trust %s for %s's spawns", id, user)}
	}
	if _, err := t.Add(pub, uid, "coconut init: "+user+"'s signing key"); err != nil {
		return failed("trust", err)
	}
	return Step{Name: "trust", Status: Created, Detail: fmt.Sprintf("%s trusted for %s's spawns (uid %d)", id, user, uid)}
}
