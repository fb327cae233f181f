package sign

import (
	"crypto/ed25519"
	"encoding/json"
	"testing"
)

func FuzzVerifyManifest(f *testing.F) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	dir := f.TempDir()
	tr, err := OpenTrust(dir)
	if err != nil {
		f.Fatal(err)
	}
	if _, err := tr.Add(pub, 0, ""); err != nil {
		f.Fatal(err)
	}
	manifest := []byte(testManifest)
	sig, err := SignManifest(priv, "team.yaml", manifest)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(manifest, sig)
	f.Add(manifest, sig[:len(sig)/2])
	f.Add(manifest, []byte(`{"payloadType":"x","payload":"","signatures":[]}`))
	f.Add([]byte{}, []byte("null"))
	f.Add(manifest, []byte(`{"payloadType":"application/vnd.coconut.manifest-digest.v1+json","payload":"e30=","signatures":[{"keyid":"ed25519:00000000000000000000000000000000","sig":"AA=="}]}`))
	f.Fuzz(func(t *testing.T, manifest, sig []byte) {
		v, err := VerifyManifest(manifest, sig, tr, 0)
		if err == nil && v.KeyID != KeyID(pub) {
			t.Fatalf("verified by unexpected key %s", v.KeyID)
		}
	})
}

func FuzzParsePublicKey(f *testing.F) {
	pub, _, _ := ed25519.GenerateKey(nil)
	f.Add(MarshalPublicKey(pub))
	f.Add([]byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := ParsePublicKey(data)
		if err == nil && len(k) != ed25519.PublicKeySize {
			t.Fatalf("accepted a %d-byte key", len(k))
		}
	})
}

func FuzzParseTrustEntry(f *testing.F) {
	pub, _, _ := ed25519.GenerateKey(nil)
	good, err := json.Marshal(map[string]any{"keyid": KeyID(pub), "public_key": string(MarshalPublicKey(pub)), "added_by": 0, "added_at": "2024-01-01T00:00:00Z", "comment": ""})
	if err != nil {
		f.Fatal(err)
	}
	if _, err := parseEntry(good); err != nil {
		f.Fatalf("seed entry does not parse: %v", err)
	}
	f.Add(good)
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := parseEntry(data)
		if err == nil && e.KeyID != KeyID(e.Key) {
			t.Fatalf("accepted entry whose keyid %s is not its key's", e.KeyID)
		}
	})
}
