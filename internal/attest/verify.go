package attest

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"

	"github.com/coconut-os/coconut/internal/sign"
	intoto "github.com/in-toto/attestation/go/v1"
	"google.golang.org/protobuf/encoding/protojson"
)

// Verify checks an attestation envelope offline and returns its claims.
// In order: the envelope is canonical and signed by hostPub (ErrSignature);
// the payload, exactly as signed, is an in-toto v1 Statement (ErrStatement,
// also for any structural fault the in-toto library finds at the end);
// the predicate type is PredicateType and the claims are well formed and
// name hostPub as host key (ErrPredicate); the only subject is
// "agent:<host_id>/<aid>" with digest {"sha256": binary sha256}
// (ErrSubject); and, when the claims carry a manifest signer key, that key is
// in trust and trusted for the authorizing uid (ErrUntrustedSigner).
//
// trust may be nil to skip only that last check, for a verifier who has the
// host key but not the host's trust store; everything else is still checked.
func Verify(env []byte, hostPub ed25519.PublicKey, trust *sign.Trust) (*Claims, error) {
	payload, err := sign.VerifyEnvelope(env, PayloadType, hostPub)
	if err != nil {
		return nil, fmt.Errorf("verify attestation: %w: %w", ErrSignature, err)
	}

	// Parse the signed bytes themselves, never a re-encoding of them.
	var st intoto.Statement
	if err := protojson.Unmarshal(payload, &st); err != nil {
		return nil, fmt.Errorf("verify attestation: %w: %v", ErrStatement, err)
	}
	if st.GetType() != intoto.StatementTypeUri {
		return nil, fmt.Errorf("verify attestation: %w: _type is %q, want %q", ErrStatement, st.GetType(), intoto.StatementTypeUri)
	}

	if st.GetPredicateType() != PredicateType {
		return nil, fmt.Errorf("verify attestation: %w: predicate type is %q, want %q", ErrPredicate, st.GetPredicateType(), PredicateType)
	}
	c, err := decodeClaims(&st)
	if err != nil {
		return nil, fmt.Errorf("verify attestation: %w: %v", ErrPredicate, err)
	}
	if id := sign.KeyID(hostPub); c.HostKeyID != id {
		return nil, fmt.Errorf("verify attestation: %w: host_key_id %s is not the verifying host key %s", ErrPredicate, c.HostKeyID, id)
	}

	subs := st.GetSubject()
	if len(subs) != 1 {
		return nil, fmt.Errorf("verify attestation: %w: %d subjects, want 1", ErrSubject, len(subs))
	}
	wantName := subjectName(c.HostID, c.AID)
	if subs[0].GetName() != wantName {
		return nil, fmt.Errorf("verify attestation: %w: subject %q, want %q", ErrSubject, subs[0].GetName(), wantName)
	}
	if want := map[string]string{"sha256": c.Binary.SHA256}; !maps.Equal(subs[0].GetDigest(), want) {
		return nil, fmt.Errorf("verify attestation: %w: subject digest %v, want sha256 %s of the binary", ErrSubject, subs[0].GetDigest(), c.Binary.SHA256)
	}

	// Anything the in-toto library still finds wrong is a statement error.
	if err := st.Validate(); err != nil {
		return nil, fmt.Errorf("verify attestation: %w: %v", ErrStatement, err)
	}

	if trust != nil && c.Manifest != nil && c.Manifest.SignerKeyID != "" {
		kid := c.Manifest.SignerKeyID
		if _, ok := trust.Lookup(kid); !ok {
			return nil, fmt.Errorf("verify attestation: %w: key %s is not in the trust store", ErrUntrustedSigner, kid)
		}
		if !trust.TrustedFor(kid, c.Authorizer.UID) {
			return nil, fmt.Errorf("verify attestation: %w: key %s is not trusted for the authorizer uid %d", ErrUntrustedSigner, kid, c.Authorizer.UID)
		}
	}
	return c, nil
}

// decodeClaims strictly decodes the predicate into Claims: unknown fields,
// fractional or out-of-range numbers and wrong types are all refused.
func decodeClaims(st *intoto.Statement) (*Claims, error) {
	if st.GetPredicate() == nil {
		return nil, errors.New("no predicate")
	}
	raw, err := protojson.Marshal(st.GetPredicate())
	if err != nil {
		return nil, err
	}
	var c Claims
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("trailing data after predicate")
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return &c, nil
}
