package attest

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"

	"github.com/coconut-os/coconut/internal/sign"
	intoto "github.com/in-toto/attestation/go/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
)

// Sign builds the in-toto Statement for c and returns it as a DSSE envelope
// (JSON) signed by hostKey. An empty c.HostKeyID is filled in from hostKey;
// a different one is refused, since the claim would then lie.
func Sign(c Claims, hostKey ed25519.PrivateKey) ([]byte, error) {
	if len(hostKey) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("sign attestation: %w: host key is %d bytes", ErrInvalidClaims, len(hostKey))
	}
	pub, _ := hostKey.Public().(ed25519.PublicKey)
	id := sign.KeyID(pub)
	switch c.HostKeyID {
	case "":
		c.HostKeyID = id
	case id:
	default:
		return nil, fmt.Errorf("sign attestation: %w: host_key_id %s is not the signing key %s", ErrInvalidClaims, c.HostKeyID, id)
	}
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("sign attestation: %w: %v", ErrInvalidClaims, err)
	}
	raw, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("sign attestation: encode claims: %w", err)
	}
	pred := &structpb.Struct{}
	if err := protojson.Unmarshal(raw, pred); err != nil {
		return nil, fmt.Errorf("sign attestation: claims to struct: %w", err)
	}
	st := &intoto.Statement{
		Type: intoto.StatementTypeUri,
		Subject: []*intoto.ResourceDescriptor{{
			Name:   subjectName(c.HostID, c.AID),
			Digest: map[string]string{"sha256": c.Binary.SHA256},
		}},
		PredicateType: PredicateType,
		Predicate:     pred,
	}
	if err := st.Validate(); err != nil {
		return nil, fmt.Errorf("sign attestation: %w: %v", ErrInvalidClaims, err)
	}
	payload, err := protojson.Marshal(st)
	if err != nil {
		return nil, fmt.Errorf("sign attestation: encode statement: %w", err)
	}
	env, err := sign.SignEnvelope(hostKey, PayloadType, payload)
	if err != nil {
		return nil, fmt.Errorf("sign attestation: %w", err)
	}
	return env, nil
}
