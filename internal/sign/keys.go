package sign

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

const (
	pemPrivate = "PRIVATE KEY"
	pemPublic  = "PUBLIC KEY"
	keyIDAlg   = "ed25519:"
	// keyIDHexLen is 16 bytes of SHA-256 in hex.
	keyIDHexLen = 32
	// maxKeyFile bounds what we read from a key file; a PEM ed25519 key is
	// about 120 bytes, so anything much larger is not a key.
	maxKeyFile = 16 << 10
)

// KeyID names a public key: "ed25519:" followed by the hex of the first 16
// bytes of SHA-256 over the raw 32-byte key. It is short enough to read
// aloud and put in file names, stable across PEM re-encodings (it hashes the
// raw key, not the file), and names the algorithm so that a future key type
// can never collide with or be mistaken for an ed25519 key. 128 bits keep
// second-preimage attacks out of reach.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return keyIDAlg + hex.EncodeToString(sum[:16])
}

// validKeyID reports whether s has the exact shape KeyID produces.
func validKeyID(s string) bool {
	h, ok := strings.CutPrefix(s, keyIDAlg)
	if !ok || len(h) != keyIDHexLen {
		return false
	}
	for _, c := range h {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// GenerateKey creates a new ed25519 key pair and writes PREFIX.key (PKCS#8
// PEM, mode 0600) and PREFIX.pub (PKIX PEM, mode 0644). The parent directory
// is created with mode 0700 if missing. Existing files are never overwritten:
// losing a signing key by accident is worse than a failed command.
func GenerateKey(prefix string) (ed25519.PublicKey, error) {
	if prefix == "" {
		return nil, errors.New("generate key: empty path prefix")
	}
	keyPath, pubPath := prefix+".key", prefix+".pub"
	for _, p := range []string{keyPath, pubPath} {
		if _, err := os.Lstat(p); err == nil {
			return nil, fmt.Errorf("generate key: %s: %w; refusing to overwrite it", p, ErrKeyExists)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("generate key: %w", err)
		}
	}
	if err := os.MkdirAll(filepath.Dir(prefix), 0o700); err != nil {
		return nil, fmt.Errorf("generate key: create directory: %w", err)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("generate key: encode private key: %w", err)
	}
	if err := writeNewFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: pemPrivate, Bytes: der}), 0o600); err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	if err := writeNewFile(pubPath, MarshalPublicKey(pub), 0o644); err != nil {
		// Do not leave half a key pair behind.
		os.Remove(keyPath)
		return nil, fmt.Errorf("generate key: %w", err)
	}
	return pub, nil
}

// writeNewFile creates path exclusively (O_EXCL, never following a symlink)
// with exactly mode, writes data and syncs it.
func writeNewFile(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s: %w; refusing to overwrite it", path, ErrKeyExists)
		}
		return err
	}
	// The umask may have narrowed the mode; set it exactly so a .pub is
	// readable by the daemon and a .key is never wider than 0600.
	err = f.Chmod(mode)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// readKeyFile reads a regular key file of bounded size and returns its mode.
func readKeyFile(path string) ([]byte, os.FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, nil, fmt.Errorf("%s: %w: not a regular file", path, ErrMalformedKey)
	}
	if fi.Size() > maxKeyFile {
		return nil, nil, fmt.Errorf("%s: %w: file is %d bytes, too large for a key", path, ErrMalformedKey, fi.Size())
	}
	buf := make([]byte, fi.Size())
	n, err := f.ReadAt(buf, 0)
	if err != nil && n != len(buf) {
		return nil, nil, err
	}
	return buf, fi, nil
}

// LoadPrivateKey reads a PKCS#8 PEM ed25519 private key. It refuses a file
// that group or other can read: such a key must be treated as leaked, and
// signing with it silently would hide that.
func LoadPrivateKey(path string) (ed25519.PrivateKey, error) {
	data, fi, err := readKeyFile(path)
	if err != nil {
		return nil, fmt.Errorf("load private key: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("load private key: %s has mode %04o: %w; run chmod 600 %s",
			path, fi.Mode().Perm(), ErrKeyPermissions, path)
	}
	der, err := decodePEM(data, pemPrivate)
	if err != nil {
		return nil, fmt.Errorf("load private key %s: %w", path, err)
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("load private key %s: %w: %v", path, ErrMalformedKey, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("load private key %s: %w: %T is not an ed25519 key", path, ErrMalformedKey, k)
	}
	return priv, nil
}

// LoadPublicKey reads a PKIX PEM ed25519 public key file.
func LoadPublicKey(path string) (ed25519.PublicKey, error) {
	data, _, err := readKeyFile(path)
	if err != nil {
		return nil, fmt.Errorf("load public key: %w", err)
	}
	pub, err := ParsePublicKey(data)
	if err != nil {
		return nil, fmt.Errorf("load public key %s: %w", path, err)
	}
	return pub, nil
}

// ParsePublicKey decodes one PEM "PUBLIC KEY" block holding a PKIX ed25519
// key. Anything after the block other than whitespace is refused, so a file
// cannot carry a second key that another tool might read instead.
func ParsePublicKey(pemBytes []byte) (ed25519.PublicKey, error) {
	der, err := decodePEM(pemBytes, pemPublic)
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedKey, err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: %T is not an ed25519 key", ErrMalformedKey, k)
	}
	return pub, nil
}

// MarshalPublicKey encodes pub as a PKIX PEM "PUBLIC KEY" block.
func MarshalPublicKey(pub ed25519.PublicKey) []byte {
	// MarshalPKIXPublicKey cannot fail for a well-sized ed25519 key.
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPublic, Bytes: der})
}

func decodePEM(data []byte, typ string) ([]byte, error) {
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%w: no PEM block", ErrMalformedKey)
	}
	if block.Type != typ {
		return nil, fmt.Errorf("%w: PEM block is %q, want %q", ErrMalformedKey, block.Type, typ)
	}
	if len(block.Headers) != 0 {
		return nil, fmt.Errorf("%w: unexpected PEM headers", ErrMalformedKey)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("%w: trailing data after the PEM block", ErrMalformedKey)
	}
	return block.Bytes, nil
}
