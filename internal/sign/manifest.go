package sign

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
)

// ManifestPayloadType is the DSSE payload type of a detached manifest
// signature. It is specific to Coconut so that a .sig made by another tool,
// or a Coconut envelope of another kind, is never taken for one.
const ManifestPayloadType = "application/vnd.coconut.manifest-digest.v1+json"

// manifestDigest is the signed payload of a manifest signature.
type manifestDigest struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// Verified describes a manifest whose signature checked out.
type Verified struct {
	KeyID   string // the trusted key that signed it
	AddedBy uint32 // the uid that added that key to the trust store
	Digest  string // hex SHA-256 of the manifest bytes
	Name    string // the file base name recorded at signing time (informational)
}

// SignManifest returns the content of a detached .sig file for manifest: a
// DSSE envelope over {"name","sha256","size"}. name is reduced to its base
// name; it is informational and not checked on verification, so a signed
// manifest may be renamed.
func SignManifest(priv ed25519.PrivateKey, name string, manifest []byte) ([]byte, error) {
	sum := sha256.Sum256(manifest)
	payload, err := json.Marshal(manifestDigest{
		Name:   filepath.Base(name),
		SHA256: hex.EncodeToString(sum[:]),
		Size:   int64(len(manifest)),
	})
	if err != nil {
		return nil, fmt.Errorf("sign manifest: %w", err)
	}
	env, err := SignEnvelope(priv, ManifestPayloadType, payload)
	if err != nil {
		return nil, fmt.Errorf("sign manifest: %w", err)
	}
	return env, nil
}

// keyLookup finds the public key for a key id and says whether it may be
// used; when it may not, reason says why in a sentence for the user.
type keyLookup func(keyID string) (pub ed25519.PublicKey, addedBy uint32, ok bool, reason string)

// VerifyManifest checks sig, the content of manifest's .sig file, for a
// spawn requested by uid. The checks run in this order, each failure
// wrapping one sentinel: ErrUnsigned, ErrMalformedSignature,
// ErrUntrustedKey, ErrBadSignature, ErrAltered. A nil trust store trusts
// nothing.
func VerifyManifest(manifest, sig []byte, trust *Trust, uid uint32) (Verified, error) {
	return verifyManifest(manifest, sig, func(keyID string) (ed25519.PublicKey, uint32, bool, string) {
		if trust == nil {
			return nil, 0, false, fmt.Sprintf("key %s is not in the trust store; add it with coconut trust add", keyID)
		}
		e, found := trust.Lookup(keyID)
		switch {
		case !found:
			return nil, 0, false, fmt.Sprintf("key %s is not in the trust store; add it with coconut trust add", keyID)
		case !trustedFor(e, uid):
			return nil, 0, false, fmt.Sprintf("key %s was added by uid %d and is trusted only for that user's agents, not uid %d; add it with coconut trust add", keyID, e.AddedBy, uid)
		}
		return e.Key, e.AddedBy, true, ""
	})
}

// VerifyManifestWithKey is VerifyManifest against one explicit public key
// instead of the trust store (coconut manifest verify --pub). Verified.AddedBy
// is 0 and meaningless here.
func VerifyManifestWithKey(manifest, sig []byte, pub ed25519.PublicKey) (Verified, error) {
	want := KeyID(pub)
	return verifyManifest(manifest, sig, func(keyID string) (ed25519.PublicKey, uint32, bool, string) {
		if keyID != want || len(pub) != ed25519.PublicKeySize {
			return nil, 0, false, fmt.Sprintf("manifest is signed by key %s, not by the given key %s", keyID, want)
		}
		return pub, 0, true, ""
	})
}

func verifyManifest(manifest, sig []byte, lookup keyLookup) (Verified, error) {
	if len(sig) == 0 {
		return Verified{}, fmt.Errorf("verify manifest: %w", ErrUnsigned)
	}
	p, err := parseEnvelope(sig, ManifestPayloadType)
	if err != nil {
		return Verified{}, fmt.Errorf("verify manifest: %w", err)
	}

	type candidate struct {
		s       parsedSig
		pub     ed25519.PublicKey
		addedBy uint32
	}
	var cands []candidate
	var reasons []string
	for _, s := range p.sigs {
		pub, addedBy, ok, reason := lookup(s.keyID)
		if !ok {
			reasons = append(reasons, reason)
			continue
		}
		cands = append(cands, candidate{s, pub, addedBy})
	}
	if len(cands) == 0 {
		return Verified{}, fmt.Errorf("verify manifest: %w: %s", ErrUntrustedKey, strings.Join(reasons, "; "))
	}

	pae := p.pae()
	var good *candidate
	for i := range cands {
		if ed25519.Verify(cands[i].pub, pae, cands[i].s.sig) {
			good = &cands[i]
			break
		}
	}
	if good == nil {
		return Verified{}, fmt.Errorf("verify manifest: %w: the signature by trusted key %s is invalid; the .sig file is corrupt or forged", ErrBadSignature, cands[0].s.keyID)
	}

	d, err := parseManifestDigest(p.payload)
	if err != nil {
		return Verified{}, fmt.Errorf("verify manifest: %w", err)
	}
	sum := sha256.Sum256(manifest)
	got := hex.EncodeToString(sum[:])
	if got != d.SHA256 || int64(len(manifest)) != d.Size {
		return Verified{}, fmt.Errorf("verify manifest: %w: signed sha256 %s (%d bytes), file has sha256 %s (%d bytes); sign it again with coconut manifest sign",
			ErrAltered, d.SHA256, d.Size, got, len(manifest))
	}
	return Verified{KeyID: good.s.keyID, AddedBy: good.addedBy, Digest: got, Name: d.Name}, nil
}

// parseManifestDigest strictly decodes a signed digest record. It runs only
// on payloads that a trusted key signed, but still refuses anything but the
// exact shape SignManifest writes.
func parseManifestDigest(payload []byte) (manifestDigest, error) {
	var d manifestDigest
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return d, fmt.Errorf("%w: signed payload: %v", ErrMalformedSignature, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return d, fmt.Errorf("%w: signed payload: trailing data", ErrMalformedSignature)
	}
	if len(d.SHA256) != sha256.Size*2 || strings.ToLower(d.SHA256) != d.SHA256 {
		return d, fmt.Errorf("%w: signed payload: sha256 %q is not a lowercase hex SHA-256", ErrMalformedSignature, d.SHA256)
	}
	if _, err := hex.DecodeString(d.SHA256); err != nil {
		return d, fmt.Errorf("%w: signed payload: sha256 %q is not a lowercase hex SHA-256", ErrMalformedSignature, d.SHA256)
	}
	if d.Size < 0 {
		return d, fmt.Errorf("%w: signed payload: negative size %d", ErrMalformedSignature, d.Size)
	}
	return d, nil
}
