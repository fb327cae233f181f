package sign

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

const testManifest = "apiVersion: coconut/v1\nname: team\nagents:\n  - name: a\n    command: [/bin/true]\n"

// fixture is a signing key, a trust store and a signed manifest.
type fixture struct {
	pub   ed25519.PublicKey
	priv  ed25519.PrivateKey
	trust *Trust
	sig   []byte
}

func newFixture(t *testing.T, addedBy uint32) *fixture {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	trust, err := OpenTrust(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := trust.Add(pub, addedBy, "test publisher"); err != nil {
		t.Fatal(err)
	}
	sig, err := SignManifest(priv, "/some/dir/team.yaml", []byte(testManifest))
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{pub, priv, trust, sig}
}

func TestSignVerifyManifest(t *testing.T) {
	f := newFixture(t, 0)
	v, err := VerifyManifest([]byte(testManifest), f.sig, f.trust, 1000)
	if err != nil {
		t.Fatalf("VerifyManifest: %v", err)
	}
	if v.KeyID != KeyID(f.pub) || v.AddedBy != 0 || v.Name != "team.yaml" || len(v.Digest) != 64 {
		t.Errorf("Verified = %+v", v)
	}
	if _, err := VerifyManifestWithKey([]byte(testManifest), f.sig, f.pub); err != nil {
		t.Errorf("VerifyManifestWithKey: %v", err)
	}
}

// envelopeJSON re-encodes an edited envelope the way SignEnvelope does, so
// the edit under test is the only reason for rejection.
func envelopeJSON(t *testing.T, sig []byte, edit func(m map[string]any)) []byte {
	t.Helper()
	var env struct {
		PayloadType string `json:"payloadType"`
		Payload     string `json:"payload"`
		Signatures  []struct {
			KeyID string `json:"keyid"`
			Sig   string `json:"sig"`
		} `json:"signatures"`
	}
	if err := json.Unmarshal(sig, &env); err != nil {
		t.Fatal(err)
	}
	sigs := []any{}
	for _, s := range env.Signatures {
		sigs = append(sigs, map[string]any{"keyid": s.KeyID, "sig": s.Sig})
	}
	m := map[string]any{"payloadType": env.PayloadType, "payload": env.Payload, "signatures": sigs}
	edit(m)
	// Marshal in the envelope's field order.
	type sigT struct {
		KeyID string `json:"keyid"`
		Sig   string `json:"sig"`
	}
	out := struct {
		PayloadType any    `json:"payloadType"`
		Payload     any    `json:"payload"`
		Signatures  []sigT `json:"signatures"`
	}{PayloadType: m["payloadType"], Payload: m["payload"]}
	for _, s := range m["signatures"].([]any) {
		sm := s.(map[string]any)
		out.Signatures = append(out.Signatures, sigT{sm["keyid"].(string), sm["sig"].(string)})
	}
	b, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

func TestVerifyManifestFailures(t *testing.T) {
	f := newFixture(t, 0)
	manifest := []byte(testManifest)

	other := newFixture(t, 0) // a key nobody added to f.trust
	userKey := newFixture(t, 0)
	if _, err := f.trust.Add(userKey.pub, 1001, "uid 1001's key"); err != nil {
		t.Fatal(err)
	}
	foreignType, err := SignEnvelope(f.priv, "application/vnd.in-toto+json", []byte(`{"name":"team.yaml"}`))
	if err != nil {
		t.Fatal(err)
	}

	flippedManifest := append([]byte{}, manifest...)
	flippedManifest[3] ^= 0x01

	flippedSig := envelopeJSON(t, f.sig, func(m map[string]any) {
		s := m["signatures"].([]any)[0].(map[string]any)
		raw, _ := base64.StdEncoding.DecodeString(s["sig"].(string))
		raw[10] ^= 0x01
		s["sig"] = base64.StdEncoding.EncodeToString(raw)
	})
	flippedPayload := envelopeJSON(t, f.sig, func(m map[string]any) {
		raw, _ := base64.StdEncoding.DecodeString(m["payload"].(string))
		raw = bytes.Replace(raw, []byte("team.yaml"), []byte("evil.yaml"), 1)
		m["payload"] = base64.StdEncoding.EncodeToString(raw)
	})
	noSigs := envelopeJSON(t, f.sig, func(m map[string]any) { m["signatures"] = []any{} })
	badB64 := envelopeJSON(t, f.sig, func(m map[string]any) { m["payload"] = "%%%not base64" })
	urlB64 := envelopeJSON(t, f.sig, func(m map[string]any) {
		raw, _ := base64.StdEncoding.DecodeString(m["payload"].(string))
		m["payload"] = base64.RawURLEncoding.EncodeToString(raw)
	})
	noKeyID := envelopeJSON(t, f.sig, func(m map[string]any) {
		m["signatures"].([]any)[0].(map[string]any)["keyid"] = ""
	})
	pretty := func() []byte {
		var v any
		_ = json.Unmarshal(f.sig, &v)
		b, _ := json.MarshalIndent(v, "", "  ")
		return b
	}()

	tests := []struct {
		name     string
		manifest []byte
		sig      []byte
		uid      uint32
		want     error
		mention  string
	}{
		{"nil sig", manifest, nil, 0, ErrUnsigned, "coconut manifest sign"},
		{"empty sig", manifest, []byte{}, 0, ErrUnsigned, "no .sig file"},
		{"truncated sig", manifest, f.sig[:len(f.sig)/2], 0, ErrMalformedSignature, "not a DSSE envelope"},
		{"foreign json", manifest, []byte(`{"apiVersion":"v1","kind":"Signature"}`), 0, ErrMalformedSignature, "not a DSSE envelope"},
		{"yaml as sig", manifest, manifest, 0, ErrMalformedSignature, ""},
		{"other payload type", manifest, foreignType, 0, ErrMalformedSignature, "payload type"},
		{"no signatures", manifest, noSigs, 0, ErrMalformedSignature, "no signatures"},
		{"bad base64", manifest, badB64, 0, ErrMalformedSignature, "base64"},
		{"url base64", manifest, urlB64, 0, ErrMalformedSignature, "base64"},
		{"empty keyid", manifest, noKeyID, 0, ErrMalformedSignature, "keyid"},
		{"pretty printed", manifest, pretty, 0, ErrMalformedSignature, "canonical"},
		{"untrusted key", manifest, other.sig, 0, ErrUntrustedKey, "coconut trust add"},
		{"key trusted for another uid", manifest, userKey.sig, 1000, ErrUntrustedKey, "uid 1001"},
		{"key trusted for another uid, root caller", manifest, userKey.sig, 0, ErrUntrustedKey, "uid 1001"},
		{"flipped signature byte", manifest, flippedSig, 0, ErrBadSignature, KeyID(f.pub)},
		{"altered payload", manifest, flippedPayload, 0, ErrBadSignature, ""},
		{"flipped manifest byte", flippedManifest, f.sig, 0, ErrAltered, "altered after signing"},
		{"appended manifest", append(append([]byte{}, manifest...), '\n'), f.sig, 0, ErrAltered, "altered after signing"},
	}
	sentinels := []error{ErrUnsigned, ErrMalformedSignature, ErrUntrustedKey, ErrBadSignature, ErrAltered}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := VerifyManifest(tt.manifest, tt.sig, f.trust, tt.uid)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			for _, s := range sentinels {
				if s != tt.want && errors.Is(err, s) {
					t.Errorf("err %v also matches %v", err, s)
				}
			}
			if !strings.Contains(err.Error(), tt.mention) {
				t.Errorf("err %q does not mention %q", err, tt.mention)
			}
		})
	}
}

func TestVerifyManifestUserKey(t *testing.T) {
	f := newFixture(t, 1000)
	tests := []struct {
		name string
		uid  uint32
		want error
	}{
		{"owner", 1000, nil},
		{"other user", 1001, ErrUntrustedKey},
		{"root", 0, ErrUntrustedKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := VerifyManifest([]byte(testManifest), f.sig, f.trust, tt.uid)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if err == nil && v.AddedBy != 1000 {
				t.Errorf("AddedBy = %d, want 1000", v.AddedBy)
			}
		})
	}
}

func TestVerifyManifestNilTrust(t *testing.T) {
	f := newFixture(t, 0)
	if _, err := VerifyManifest([]byte(testManifest), f.sig, nil, 0); !errors.Is(err, ErrUntrustedKey) {
		t.Fatalf("err = %v, want ErrUntrustedKey", err)
	}
}

func TestVerifyManifestWithWrongKey(t *testing.T) {
	f := newFixture(t, 0)
	other, _, _ := ed25519.GenerateKey(nil)
	if _, err := VerifyManifestWithKey([]byte(testManifest), f.sig, other); !errors.Is(err, ErrUntrustedKey) {
		t.Fatalf("err = %v, want ErrUntrustedKey", err)
	}
}

func TestVerifyManifestSignedGarbagePayload(t *testing.T) {
	// A trusted key signed something of the right type that is not a
	// digest record: refuse it as malformed, never as verified.
	f := newFixture(t, 0)
	tests := []struct {
		name    string
		payload string
	}{
		{"not json", "hello"},
		{"unknown field", `{"name":"a","sha256":"` + strings.Repeat("0", 64) + `","size":1,"extra":1}`},
		{"short digest", `{"name":"a","sha256":"00","size":1}`},
		{"upper hex", `{"name":"a","sha256":"` + strings.Repeat("A", 64) + `","size":1}`},
		{"negative size", `{"name":"a","sha256":"` + strings.Repeat("0", 64) + `","size":-1}`},
		{"trailing", `{"name":"a","sha256":"` + strings.Repeat("0", 64) + `","size":1}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sig, err := SignEnvelope(f.priv, ManifestPayloadType, []byte(tt.payload))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := VerifyManifest([]byte(testManifest), sig, f.trust, 0); !errors.Is(err, ErrMalformedSignature) {
				t.Fatalf("err = %v, want ErrMalformedSignature", err)
			}
		})
	}
}
