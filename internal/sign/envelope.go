package sign

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"
)

const (
	// maxEnvelope bounds an envelope we are willing to parse. Manifest
	// signatures and attestations are a few KiB.
	maxEnvelope = 1 << 20
	// maxSignatures bounds the work one envelope can make us do.
	maxSignatures = 16
)

// ed25519SV adapts an ed25519 key to dsse.SignerVerifier.
type ed25519SV struct {
	priv ed25519.PrivateKey
	pub  ed25519.PublicKey
}

var _ dsse.SignerVerifier = ed25519SV{}

func (s ed25519SV) Sign(_ context.Context, data []byte) ([]byte, error) {
	if len(s.priv) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("%w: private key is %d bytes", ErrMalformedKey, len(s.priv))
	}
	return ed25519.Sign(s.priv, data), nil
}

func (s ed25519SV) Verify(_ context.Context, data, sig []byte) error {
	if len(s.pub) != ed25519.PublicKeySize || !ed25519.Verify(s.pub, data, sig) {
		return ErrBadSignature
	}
	return nil
}

func (s ed25519SV) KeyID() (string, error) { return KeyID(s.pub), nil }

func (s ed25519SV) Public() crypto.PublicKey { return s.pub }

// SignEnvelope signs payload with priv as a DSSE envelope of payloadType and
// returns its JSON encoding followed by a newline. The signature carries the
// key's KeyID.
func SignEnvelope(priv ed25519.PrivateKey, payloadType string, payload []byte) ([]byte, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("sign envelope: %w: private key is %d bytes", ErrMalformedKey, len(priv))
	}
	pub, _ := priv.Public().(ed25519.PublicKey)
	signer, err := dsse.NewEnvelopeSigner(ed25519SV{priv: priv, pub: pub})
	if err != nil {
		return nil, fmt.Errorf("sign envelope: %w", err)
	}
	env, err := signer.SignPayload(context.Background(), payloadType, payload)
	if err != nil {
		return nil, fmt.Errorf("sign envelope: %w", err)
	}
	out, err := json.Marshal(env)
	if err != nil {
		return nil, fmt.Errorf("sign envelope: %w", err)
	}
	return append(out, '\n'), nil
}

// parsedSig is one decoded signature of an envelope.
type parsedSig struct {
	keyID string
	sig   []byte
}

// parsedEnvelope is an envelope whose structure has been checked but whose
// signatures have not.
type parsedEnvelope struct {
	payloadType string
	payload     []byte
	sigs        []parsedSig
}

// pae is the DSSE pre-authentication encoding the signatures cover.
func (p *parsedEnvelope) pae() []byte { return dsse.PAE(p.payloadType, p.payload) }

// parseEnvelope decodes data as a DSSE envelope and checks that it is in the
// exact form SignEnvelope writes. Every failure wraps ErrMalformedSignature.
//
// We verify signatures ourselves (over dsse.PAE) instead of with
// dsse.EnvelopeVerifier: the library folds "no trusted key" and "bad
// signature" into one error, accepts URL-safe and non-canonical base64, and
// prints to stdout in one path; we need each case to be distinct and strict.
func parseEnvelope(data []byte, payloadType string) (*parsedEnvelope, error) {
	if len(data) > maxEnvelope {
		return nil, fmt.Errorf("%w: %d bytes is larger than the %d byte limit", ErrMalformedSignature, len(data), maxEnvelope)
	}
	var env dsse.Envelope
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil {
		return nil, fmt.Errorf("%w: not a DSSE envelope: %v", ErrMalformedSignature, err)
	}
	// Canonical form: re-encoding must give back the input byte for byte.
	// This rejects whitespace, key reordering, case-folded keys, duplicate
	// keys and escaped characters, so an envelope has a single encoding.
	canon, err := json.Marshal(&env)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedSignature, err)
	}
	if body := bytes.TrimSuffix(data, []byte("\n")); !bytes.Equal(body, canon) {
		return nil, fmt.Errorf("%w: envelope is not in canonical form (extra whitespace, fields or escapes)", ErrMalformedSignature)
	}
	if env.PayloadType != payloadType {
		return nil, fmt.Errorf("%w: payload type is %q, want %q", ErrMalformedSignature, env.PayloadType, payloadType)
	}
	payload, err := decodeB64(env.Payload)
	if err != nil {
		return nil, fmt.Errorf("%w: payload: %v", ErrMalformedSignature, err)
	}
	if len(env.Signatures) == 0 {
		return nil, fmt.Errorf("%w: envelope has no signatures", ErrMalformedSignature)
	}
	if len(env.Signatures) > maxSignatures {
		return nil, fmt.Errorf("%w: envelope has %d signatures, at most %d allowed", ErrMalformedSignature, len(env.Signatures), maxSignatures)
	}
	p := &parsedEnvelope{payloadType: env.PayloadType, payload: payload}
	for i, s := range env.Signatures {
		if !validKeyID(s.KeyID) {
			return nil, fmt.Errorf("%w: signature %d: keyid %q is not an ed25519 key id", ErrMalformedSignature, i, s.KeyID)
		}
		sig, err := decodeB64(s.Sig)
		if err != nil {
			return nil, fmt.Errorf("%w: signature %d: %v", ErrMalformedSignature, i, err)
		}
		if len(sig) != ed25519.SignatureSize {
			return nil, fmt.Errorf("%w: signature %d is %d bytes, want %d", ErrMalformedSignature, i, len(sig), ed25519.SignatureSize)
		}
		p.sigs = append(p.sigs, parsedSig{keyID: s.KeyID, sig: sig})
	}
	return p, nil
}

// decodeB64 accepts only canonical padded standard base64, the encoding
// SignEnvelope writes, so that no two strings decode to the same bytes.
func decodeB64(s string) ([]byte, error) {
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("bad base64: %v", err)
	}
	// Strict still skips embedded newlines; re-encoding catches them.
	if base64.StdEncoding.EncodeToString(b) != s {
		return nil, errors.New("base64 is not in canonical form")
	}
	return b, nil
}

// VerifyEnvelope checks that env is a canonical DSSE envelope of payloadType
// carrying a valid signature by pub, and returns the exact payload bytes that
// were signed. Callers must parse these bytes, never a re-encoding of them.
//
// Errors wrap ErrMalformedSignature (not an envelope, wrong payload type),
// ErrUntrustedKey (no signature names pub's key id) or ErrBadSignature.
func VerifyEnvelope(env []byte, payloadType string, pub ed25519.PublicKey) ([]byte, error) {
	if len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("verify envelope: %w: public key is %d bytes", ErrMalformedKey, len(pub))
	}
	p, err := parseEnvelope(env, payloadType)
	if err != nil {
		return nil, fmt.Errorf("verify envelope: %w", err)
	}
	id := KeyID(pub)
	named := false
	pae := p.pae()
	for _, s := range p.sigs {
		if s.keyID != id {
			continue
		}
		named = true
		if ed25519.Verify(pub, pae, s.sig) {
			return p.payload, nil
		}
	}
	if !named {
		return nil, fmt.Errorf("verify envelope: %w: no signature by key %s", ErrUntrustedKey, id)
	}
	return nil, fmt.Errorf("verify envelope: %w: signature by key %s", ErrBadSignature, id)
}
