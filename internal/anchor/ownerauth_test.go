package anchor

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// TestOwnerAuth: on a fresh swtpm the owner auth is taken with a secret
// kept 0600; the index is then defined only with it; a re-run recognises
// it; an owner auth that is not ours (no secret, a wrong one, a secret
// file others can read) is a clear ErrOwnerAuth.
func TestOwnerAuth(t *testing.T) {
	tpm := dialSWTPM(t, startSWTPM(t))
	keys := t.TempDir()
	set, err := EnsureOwnerAuth(tpm, keys)
	if err != nil || !set {
		t.Fatalf("first EnsureOwnerAuth: set %v, %v", set, err)
	}
	st, err := os.Stat(OwnerAuthPath(keys))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("secret file: %v %v", st, err)
	}
	if on, err := ownerAuthSet(tpm); err != nil || !on {
		t.Fatalf("ownerAuthSet after taking it: %v %v", on, err)
	}
	secret, err := ReadOwnerAuth(keys)
	if err != nil || len(secret) != 32 {
		t.Fatalf("ReadOwnerAuth: %x %v", secret, err)
	}
	// The empty auth no longer opens the owner hierarchy; ours does.
	if err := defineIndex(tpm, DefaultIndex, nil); err == nil {
		t.Fatal("an index was defined with the empty owner auth after coconut set one")
	}
	a, err := OpenTPM(TPMConfig{TPM: tpm, ChainDir: t.TempDir(), OwnerAuth: secret})
	if err != nil {
		t.Fatalf("OpenTPM with the owner auth: %v", err)
	}
	a.Close()

	if set, err := EnsureOwnerAuth(tpm, keys); err != nil || set {
		t.Fatalf("second EnsureOwnerAuth: set %v, %v (want recognised, unchanged)", set, err)
	}

	other := t.TempDir()
	if _, err := EnsureOwnerAuth(tpm, other); !errors.Is(err, ErrOwnerAuth) || !strings.Contains(err.Error(), "tpm2_changeauth -c owner") {
		t.Errorf("owner auth set by someone else: %v", err)
	}
	os.WriteFile(OwnerAuthPath(other), []byte("00112233\n"), 0o600)
	if _, err := EnsureOwnerAuth(tpm, other); !errors.Is(err, ErrOwnerAuth) || !strings.Contains(err.Error(), "does not open it") {
		t.Errorf("a wrong secret: %v", err)
	}
	os.Chmod(OwnerAuthPath(keys), 0o644)
	if _, err := EnsureOwnerAuth(tpm, keys); !errors.Is(err, ErrOwnerAuth) || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("a secret others can read: %v", err)
	}
	os.Chmod(OwnerAuthPath(keys), 0o600)
	// A crash after the secret was written and before it was set: the
	// next run sets the kept secret.
	tpm2 := dialSWTPM(t, startSWTPM(t))
	crashed := t.TempDir()
	os.WriteFile(OwnerAuthPath(crashed), []byte("aabbccdd\n"), 0o600)
	if set, err := EnsureOwnerAuth(tpm2, crashed); err != nil || !set {
		t.Fatalf("after a crash: set %v, %v", set, err)
	}
	if err := changeOwnerAuth(tpm2, []byte{0xaa, 0xbb, 0xcc, 0xdd}, []byte{0xaa, 0xbb, 0xcc, 0xdd}); err != nil {
		t.Errorf("the kept secret does not open the owner hierarchy: %v", err)
	}
}
