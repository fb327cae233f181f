package checkpoint

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// HashSize is the size of a Merkle hash (SHA-256).
const HashSize = sha256.Size

// Checkpoint is the signed statement "the tree of the first Size records
// has root Root", in C2SP tlog-checkpoint form.
type Checkpoint struct {
	Origin string
	Size   uint64
	Root   [HashSize]byte
}

// Origin is the checkpoint origin (and note key name) of a host key:
// "coconut/ed25519:<hex>". It names the log, so checkpoints of different
// hosts cannot be confused when published to a shared log.
func Origin(keyID string) string { return "coconut/" + keyID }

// Body is the note text: origin, size and base64 root, one per line.
func (c Checkpoint) Body() string {
	return fmt.Sprintf("%s\n%d\n%s\n", c.Origin, c.Size, base64.StdEncoding.EncodeToString(c.Root[:]))
}

// ParseBody parses a checkpoint note text. Extension lines after the root
// are refused: we never write them, and a verifier must not accept text it
// does not understand.
func ParseBody(text string) (Checkpoint, error) {
	lines := strings.Split(text, "\n")
	if len(lines) != 4 || lines[3] != "" {
		return Checkpoint{}, fmt.Errorf("%w: want 3 lines (origin, size, root)", ErrBadNote)
	}
	c := Checkpoint{Origin: lines[0]}
	if c.Origin == "" || strings.TrimSpace(c.Origin) != c.Origin {
		return Checkpoint{}, fmt.Errorf("%w: empty or padded origin", ErrBadNote)
	}
	n, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil || strconv.FormatUint(n, 10) != lines[1] {
		return Checkpoint{}, fmt.Errorf("%w: size %q", ErrBadNote, lines[1])
	}
	c.Size = n
	root, err := base64.StdEncoding.Strict().DecodeString(lines[2])
	if err != nil || len(root) != HashSize {
		return Checkpoint{}, fmt.Errorf("%w: root %q", ErrBadNote, lines[2])
	}
	c.Root = [HashSize]byte(root)
	return c, nil
}

// signer is a note.Signer over the host key, named by the origin.
type signer struct {
	name string
	hash uint32
	key  ed25519.PrivateKey
}

func (s *signer) Name() string                    { return s.name }
func (s *signer) KeyHash() uint32                 { return s.hash }
func (s *signer) Sign(msg []byte) ([]byte, error) { return ed25519.Sign(s.key, msg), nil }

// noteKeyHash is note's key hash: SHA-256(name "\n" 0x01 pub)[:4] big endian.
func noteKeyHash(name string, pub ed25519.PublicKey) uint32 {
	h := sha256.New()
	h.Write([]byte(name + "\n"))
	h.Write([]byte{1})
	h.Write(pub)
	return binary.BigEndian.Uint32(h.Sum(nil))
}

// NewSigner signs notes named origin with the host key.
func NewSigner(origin string, key ed25519.PrivateKey) (note.Signer, error) {
	pub, ok := key.Public().(ed25519.PublicKey)
	if !ok || len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("%w: not an ed25519 key", ErrBadNote)
	}
	if _, err := note.NewEd25519VerifierKey(origin, pub); err != nil {
		return nil, fmt.Errorf("note key name %q: %w", origin, err)
	}
	return &signer{name: origin, hash: noteKeyHash(origin, pub), key: key}, nil
}

// NewVerifier verifies notes named origin signed by pub.
func NewVerifier(origin string, pub ed25519.PublicKey) (note.Verifier, error) {
	vkey, err := note.NewEd25519VerifierKey(origin, pub)
	if err != nil {
		return nil, fmt.Errorf("note key name %q: %w", origin, err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, fmt.Errorf("note verifier: %w", err)
	}
	return v, nil
}

// VerifierKey is the C2SP vkey string of the host key
// ("coconut/ed25519:…+hash+base64"), for tools outside Coconut.
func VerifierKey(origin string, pub ed25519.PublicKey) (string, error) {
	return note.NewEd25519VerifierKey(origin, pub)
}

// Sign returns the signed note of c.
func Sign(c Checkpoint, s note.Signer) ([]byte, error) {
	if c.Origin != s.Name() {
		return nil, fmt.Errorf("%w: origin %q signed as %q", ErrBadNote, c.Origin, s.Name())
	}
	b, err := note.Sign(&note.Note{Text: c.Body()}, s)
	if err != nil {
		return nil, fmt.Errorf("sign checkpoint: %w", err)
	}
	return b, nil
}

// Open verifies a signed checkpoint note with the host's public key and
// parses it. The origin must be the host's (Origin(KeyID(pub))) and the
// note must carry a valid signature by that key; other signatures (a
// witness's, later) are ignored.
func Open(signed []byte, origin string, pub ed25519.PublicKey) (Checkpoint, error) {
	v, err := NewVerifier(origin, pub)
	if err != nil {
		return Checkpoint{}, err
	}
	n, err := note.Open(signed, note.VerifierList(v))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("%w: %v", ErrBadNote, err)
	}
	c, err := ParseBody(n.Text)
	if err != nil {
		return Checkpoint{}, err
	}
	if c.Origin != origin {
		return Checkpoint{}, fmt.Errorf("%w: origin %q, want %q", ErrBadNote, c.Origin, origin)
	}
	return c, nil
}

// sameNote reports whether two notes are byte-identical.
func sameNote(a, b []byte) bool { return bytes.Equal(a, b) }
