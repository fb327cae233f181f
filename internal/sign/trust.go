package sign

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"sync"
	"time"
)

// TrustEntry is one trusted publisher key, stored as one JSON file.
type TrustEntry struct {
	KeyID     string            `json:"keyid"`
	PublicKey string            `json:"public_key"` // PEM text
	AddedBy   uint32            `json:"added_by"`   // uid that added the key
	AddedAt   time.Time         `json:"added_at"`   // RFC 3339, UTC, seconds
	Comment   string            `json:"comment"`
	Key       ed25519.PublicKey `json:"-"` // parsed PublicKey
}

// Trust is the host's trust store: a directory with one JSON file per key.
// It rereads the directory on every query, so a key added or removed by
// another process takes effect at once; the store holds a handful of keys
// and is consulted once per spawn, so that costs little, and a removed key
// is never trusted from a stale cache. Safe for concurrent use.
type Trust struct {
	dir string

	mu       sync.Mutex
	entries  map[string]TrustEntry
	problems []error
}

// OpenTrust opens (creating with mode 0755 if missing) the trust directory
// dir and loads it. A directory that group or other can write is refused:
// anyone able to drop a file there could make the host trust their key.
func OpenTrust(dir string) (*Trust, error) {
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("open trust store: %w", err)
		}
		// Set the mode exactly: a umask such as 002 must not leave a fresh
		// store group-writable (and then refused below).
		if err := os.Chmod(dir, 0o755); err != nil {
			return nil, fmt.Errorf("open trust store: %w", err)
		}
	}
	t := &Trust{dir: dir}
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.reloadLocked(); err != nil {
		return nil, fmt.Errorf("open trust store: %w", err)
	}
	return t, nil
}

// Dir returns the trust store's directory.
func (t *Trust) Dir() string { return t.dir }

// refreshLocked reloads the store; if the directory cannot be read it trusts
// nothing (fail closed) and records why in Problems.
func (t *Trust) refreshLocked() {
	if err := t.reloadLocked(); err != nil {
		t.entries = nil
		t.problems = []error{err}
	}
}

// Add trusts pub on behalf of addedBy and returns its key id. Adding a key
// that is already trusted by the same uid, or by root, changes nothing. Root
// adding a key a user added takes it over for everyone. A user adding a key
// another user added fails with ErrTrustConflict: the entry has one owner,
// and silently keeping the first would leave the second user puzzled.
func (t *Trust) Add(pub ed25519.PublicKey, addedBy uint32, comment string) (string, error) {
	if len(pub) != ed25519.PublicKeySize {
		return "", fmt.Errorf("trust add: %w: public key is %d bytes", ErrMalformedKey, len(pub))
	}
	id := KeyID(pub)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.refreshLocked()
	if old, ok := t.entries[id]; ok {
		switch {
		case old.AddedBy == 0 || old.AddedBy == addedBy:
			return id, nil
		case addedBy != 0:
			return "", fmt.Errorf("trust add: key %s: %w (uid %d); ask root to add it for every user", id, ErrTrustConflict, old.AddedBy)
		}
	}
	e := TrustEntry{
		KeyID:     id,
		PublicKey: string(MarshalPublicKey(pub)),
		AddedBy:   addedBy,
		AddedAt:   time.Now().UTC().Truncate(time.Second),
		Comment:   comment,
		Key:       pub,
	}
	if err := writeEntry(t.dir, e); err != nil {
		return "", fmt.Errorf("trust add: %w", err)
	}
	if t.entries == nil {
		t.entries = map[string]TrustEntry{}
	}
	t.entries[id] = e
	return id, nil
}

// Lookup returns the entry for keyID, if the store holds a valid one.
func (t *Trust) Lookup(keyID string) (TrustEntry, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.refreshLocked()
	e, ok := t.entries[keyID]
	return e, ok
}

// List returns all valid entries sorted by key id.
func (t *Trust) List() []TrustEntry {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.refreshLocked()
	out := make([]TrustEntry, 0, len(t.entries))
	for _, e := range t.entries {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].KeyID < out[j].KeyID })
	return out
}

// TrustedFor reports whether keyID may sign manifests spawned by uid. A key
// added by root is trusted for every caller. A key added by uid U is trusted
// only for U's own spawns: otherwise any user could add their key and have
// root, or another user, run a manifest they signed with that user's rights.
func (t *Trust) TrustedFor(keyID string, uid uint32) bool {
	e, ok := t.Lookup(keyID)
	return ok && trustedFor(e, uid)
}

func trustedFor(e TrustEntry, uid uint32) bool {
	return e.AddedBy == 0 || e.AddedBy == uid
}

// Problems returns why files in the directory were skipped at the last
// load. Skipped files are never trusted; the daemon should surface these
// (coconut doctor) rather than ignore them.
func (t *Trust) Problems() []error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.refreshLocked()
	return append([]error(nil), t.problems...)
}
