package peer

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
)

// KeyPrefix starts every inference key, so a leaked one is recognisable
// (secret scanners) and a key of another service is refused by its shape.
const KeyPrefix = "coco-"

// keyLen is the length of a key: the prefix and 32 random bytes in
// unpadded base64url.
var keyLen = len(KeyPrefix) + base64.RawURLEncoding.EncodedLen(32)

// NewKey returns a fresh random inference key and its hash. Only the hash
// is kept; the key lives in the agent's environment.
func NewKey() (key, hash string, err error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", "", fmt.Errorf("inference key: %w", err)
	}
	key = KeyPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	return key, HashKey(key), nil
}

// HashKey is the form a key is stored and looked up in: hex SHA-256. The
// key has 256 bits of entropy, so no salt or slow hash is needed.
func HashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// ParseBearer extracts the key from an Authorization header value
// ("Bearer coco-…") and checks its shape.
func ParseBearer(h string) (string, error) {
	if h == "" {
		return "", fmt.Errorf("%w: no Authorization header (send Authorization: Bearer $OPENAI_API_KEY)", ErrBadKey)
	}
	scheme, key, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", fmt.Errorf("%w: Authorization is not a Bearer key", ErrBadKey)
	}
	key = strings.TrimSpace(key)
	if !strings.HasPrefix(key, KeyPrefix) || len(key) != keyLen {
		return "", fmt.Errorf("%w: not a coconut inference key (%s…, %d characters)", ErrBadKey, KeyPrefix, keyLen)
	}
	if _, err := base64.RawURLEncoding.Strict().DecodeString(key[len(KeyPrefix):]); err != nil {
		return "", fmt.Errorf("%w: not a coconut inference key: %v", ErrBadKey, err)
	}
	return key, nil
}
