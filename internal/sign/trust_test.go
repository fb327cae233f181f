package sign

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestTrustAddLookup(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "trust.d")
	tr, err := OpenTrust(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("trust dir mode = %v, %v; want 0755", fi.Mode(), err)
	}
	pub, _, _ := ed25519.GenerateKey(nil)
	id, err := tr.Add(pub, 1000, "alice laptop")
	if err != nil {
		t.Fatal(err)
	}
	if id != KeyID(pub) {
		t.Errorf("Add returned %s, want %s", id, KeyID(pub))
	}
	file := filepath.Join(dir, strings.Replace(id, ":", "_", 1)+".json")
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatalf("entry file: %v", err)
	}
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("entry mode = %v, want 0644", fi.Mode().Perm())
	}
	var raw map[string]any
	b, _ := os.ReadFile(file)
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"keyid", "public_key", "added_by", "added_at", "comment"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("entry file lacks %q: %s", k, b)
		}
	}

	// A fresh store over the same directory sees the entry.
	tr2, err := OpenTrust(dir)
	if err != nil {
		t.Fatal(err)
	}
	e, ok := tr2.Lookup(id)
	if !ok || !e.Key.Equal(pub) || e.AddedBy != 1000 || e.Comment != "alice laptop" || e.AddedAt.IsZero() {
		t.Fatalf("Lookup = %+v, %v", e, ok)
	}
	if l := tr2.List(); len(l) != 1 || l[0].KeyID != id {
		t.Errorf("List = %+v", l)
	}
	if p := tr2.Problems(); len(p) != 0 {
		t.Errorf("Problems = %v", p)
	}
}

func TestTrustAddOwnership(t *testing.T) {
	tests := []struct {
		name        string
		first, then uint32
		wantErr     error
		wantOwner   uint32
	}{
		{"same user again", 1000, 1000, nil, 1000},
		{"root again", 0, 0, nil, 0},
		{"user after root stays root's", 0, 1000, nil, 0},
		{"root takes over user key", 1000, 0, nil, 0},
		{"another user conflicts", 1000, 1001, ErrTrustConflict, 1000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, err := OpenTrust(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			pub, _, _ := ed25519.GenerateKey(nil)
			if _, err := tr.Add(pub, tt.first, "first"); err != nil {
				t.Fatal(err)
			}
			if _, err := tr.Add(pub, tt.then, "then"); !errors.Is(err, tt.wantErr) {
				t.Fatalf("second Add err = %v, want %v", err, tt.wantErr)
			}
			e, ok := tr.Lookup(KeyID(pub))
			if !ok || e.AddedBy != tt.wantOwner {
				t.Errorf("owner = %d (%v), want %d", e.AddedBy, ok, tt.wantOwner)
			}
		})
	}
}

func TestTrustedFor(t *testing.T) {
	tr, err := OpenTrust(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	rootKey, _, _ := ed25519.GenerateKey(nil)
	userKey, _, _ := ed25519.GenerateKey(nil)
	unknown, _, _ := ed25519.GenerateKey(nil)
	tr.Add(rootKey, 0, "")
	tr.Add(userKey, 1000, "")
	tests := []struct {
		name string
		key  ed25519.PublicKey
		uid  uint32
		want bool
	}{
		{"root key for root", rootKey, 0, true},
		{"root key for user", rootKey, 1000, true},
		{"user key for owner", userKey, 1000, true},
		{"user key for other user", userKey, 1001, false},
		{"user key for root", userKey, 0, false},
		{"unknown key", unknown, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tr.TrustedFor(KeyID(tt.key), tt.uid); got != tt.want {
				t.Errorf("TrustedFor = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestTrustSkipsCorruptEntries(t *testing.T) {
	dir := t.TempDir()
	tr, err := OpenTrust(dir)
	if err != nil {
		t.Fatal(err)
	}
	good, _, _ := ed25519.GenerateKey(nil)
	if _, err := tr.Add(good, 0, "good"); err != nil {
		t.Fatal(err)
	}
	victim, _, _ := ed25519.GenerateKey(nil)
	attacker, _, _ := ed25519.GenerateKey(nil)
	entry := func(id string, pub ed25519.PublicKey) []byte {
		b, _ := json.Marshal(map[string]any{"keyid": id, "public_key": string(MarshalPublicKey(pub)), "added_by": 0, "added_at": "2024-01-01T00:00:00Z", "comment": ""})
		return b
	}
	files := []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{"truncated.json", []byte(`{"keyid":`), 0o644},
		{"notes.txt", []byte("hello"), 0o644},
		// An entry claiming the victim's id with the attacker's key.
		{entryFileName(KeyID(victim)), entry(KeyID(victim), attacker), 0o644},
		// A valid entry stored under another key's file name.
		{entryFileName(KeyID(victim)) + "x.json", entry(KeyID(attacker), attacker), 0o644},
		// A valid entry that anyone may rewrite.
		{entryFileName(KeyID(attacker)), entry(KeyID(attacker), attacker), 0o666},
	}
	for _, f := range files {
		p := filepath.Join(dir, f.name)
		if err := os.WriteFile(p, f.data, f.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, f.mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Join(dir, entryFileName(KeyID(good))), filepath.Join(dir, "link.json")); err != nil {
		t.Fatal(err)
	}
	if l := tr.List(); len(l) != 1 || l[0].KeyID != KeyID(good) {
		t.Errorf("List = %+v, want only the good key", l)
	}
	for _, k := range []ed25519.PublicKey{victim, attacker} {
		if tr.TrustedFor(KeyID(k), 0) {
			t.Errorf("corrupt entry for %s is trusted", KeyID(k))
		}
	}
	probs := tr.Problems()
	if len(probs) != len(files)+1 {
		t.Errorf("Problems = %d %v, want %d", len(probs), probs, len(files)+1)
	}
	for _, p := range probs {
		if !errors.Is(p, ErrMalformedTrustEntry) {
			t.Errorf("problem %v does not wrap ErrMalformedTrustEntry", p)
		}
	}
}

func TestTrustSeesRemoval(t *testing.T) {
	dir := t.TempDir()
	tr, err := OpenTrust(dir)
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _ := ed25519.GenerateKey(nil)
	id, _ := tr.Add(pub, 0, "")
	if err := os.Remove(filepath.Join(dir, entryFileName(id))); err != nil {
		t.Fatal(err)
	}
	if tr.TrustedFor(id, 0) {
		t.Error("a removed key is still trusted")
	}
}

func TestOpenTrustRefusesWritableDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenTrust(dir); !errors.Is(err, ErrInsecureTrustDir) {
		t.Fatalf("err = %v, want ErrInsecureTrustDir", err)
	}
}

func TestTrustConcurrent(t *testing.T) {
	tr, err := OpenTrust(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	keys := make([]ed25519.PublicKey, 8)
	for i := range keys {
		keys[i], _, _ = ed25519.GenerateKey(nil)
	}
	var wg sync.WaitGroup
	for i := range keys {
		wg.Add(2)
		go func() { defer wg.Done(); tr.Add(keys[i], 0, "") }()
		go func() { defer wg.Done(); tr.TrustedFor(KeyID(keys[i]), 0) }()
	}
	wg.Wait()
	if n := len(tr.List()); n != len(keys) {
		t.Errorf("List has %d keys, want %d", n, len(keys))
	}
}
