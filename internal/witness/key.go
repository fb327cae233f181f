package witness

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

// ErrBadKey means a witness verifier key is malformed.
var ErrBadKey = errors.New("bad witness verifier key")

// Key is a witness's public key as its operator publishes it: a C2SP
// signed-note verifier key ("NAME+HASH+BASE64", ed25519 type 0x01 or
// cosignature/v1 type 0x04, or ML-DSA-44 type 0x06), verifying
// timestamped cosignature/v1 signatures.
type Key struct {
	Name     string // the key name, which names the witness in its signature lines
	VKey     string // as given
	Verifier note.Verifier
}

// Key algorithm bytes (C2SP signed-note, tlog-cosignature).
const (
	algEd25519      = 0x01
	algCosigV1      = 0x04
	algMLDSA44      = 0x06
	ed25519KeyBytes = 32
)

// ParseKey parses a witness verifier key, checking what
// formats/note.NewVerifierForCosignatureV1 leaves unchecked (the key hash
// must be the key's, so a key copied with a typo is refused here, not
// found out when every cosignature fails to verify).
func ParseKey(vkey string) (Key, error) {
	vkey = strings.TrimSpace(vkey)
	// The base64 key may hold '+': cut name and hash off the front.
	name, rest, ok1 := strings.Cut(vkey, "+")
	hash16, key64, ok2 := strings.Cut(rest, "+")
	if !ok1 || !ok2 {
		return Key{}, fmt.Errorf("%w %q: want NAME+HASH+KEY (the witness's note verifier key, as its operator publishes it)", ErrBadKey, clipKey(vkey))
	}
	if name == "" || len(name) > 255 || !utf8.ValidString(name) || strings.IndexFunc(name, unicode.IsSpace) >= 0 {
		return Key{}, fmt.Errorf("%w %q: name %q: want a non-empty name without spaces", ErrBadKey, clipKey(vkey), name)
	}
	hash, err := strconv.ParseUint(hash16, 16, 32)
	if err != nil || len(hash16) != 8 {
		return Key{}, fmt.Errorf("%w %q: key hash %q: want 8 hex digits", ErrBadKey, clipKey(vkey), hash16)
	}
	key, err := base64.StdEncoding.Strict().DecodeString(key64)
	if err != nil || len(key) < 2 {
		return Key{}, fmt.Errorf("%w %q: key: not base64", ErrBadKey, clipKey(vkey))
	}
	switch key[0] {
	case algEd25519, algCosigV1:
		if len(key) != 1+ed25519KeyBytes {
			return Key{}, fmt.Errorf("%w %q: ed25519 key of %d bytes, want %d", ErrBadKey, clipKey(vkey), len(key)-1, ed25519KeyBytes)
		}
	case algMLDSA44:
	default:
		return Key{}, fmt.Errorf("%w %q: key type 0x%02x: want ed25519 (0x01), cosignature/v1 ed25519 (0x04) or ML-DSA-44 (0x06)", ErrBadKey, clipKey(vkey), key[0])
	}
	if uint32(hash) != keyHash(name, key) {
		return Key{}, fmt.Errorf("%w %q: key hash %s does not match the key (copied wrongly?)", ErrBadKey, clipKey(vkey), hash16)
	}
	v, err := fnote.NewVerifierForCosignatureV1(vkey)
	if err != nil {
		return Key{}, fmt.Errorf("%w %q: %v", ErrBadKey, clipKey(vkey), err)
	}
	return Key{Name: name, VKey: vkey, Verifier: v}, nil
}

// keyHash is the signed-note key hash: SHA-256(name "\n" type||key)[:4].
func keyHash(name string, key []byte) uint32 {
	h := sha256.New()
	h.Write([]byte(name + "\n"))
	h.Write(key)
	return binary.BigEndian.Uint32(h.Sum(nil))
}

func clipKey(s string) string {
	if len(s) > 120 {
		return s[:120] + "…"
	}
	return s
}
