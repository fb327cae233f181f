package sign

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"testing"
)

func TestEnvelopeRoundTrip(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	payload := []byte(`{"hello":"world"}`)
	env, err := SignEnvelope(priv, "application/x-test", payload)
	if err != nil {
		t.Fatal(err)
	}
	got, err := VerifyEnvelope(env, "application/x-test", pub)
	if err != nil {
		t.Fatalf("VerifyEnvelope: %v", err)
	}
	if !bytes.Equal(got, payload) {
		t.Errorf("payload = %q, want %q", got, payload)
	}
	// Without the trailing newline the envelope is still canonical.
	if _, err := VerifyEnvelope(bytes.TrimSuffix(env, []byte("\n")), "application/x-test", pub); err != nil {
		t.Errorf("without newline: %v", err)
	}
}

func TestVerifyEnvelopeFailures(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	other, _, _ := ed25519.GenerateKey(nil)
	env, err := SignEnvelope(priv, "application/x-test", []byte("payload"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		env  []byte
		typ  string
		pub  ed25519.PublicKey
		want error
	}{
		{"wrong type", env, "application/x-other", pub, ErrMalformedSignature},
		{"other key", env, "application/x-test", other, ErrUntrustedKey},
		{"bad key", env, "application/x-test", pub[:5], ErrMalformedKey},
		{"leading space", append([]byte(" "), env...), "application/x-test", pub, ErrMalformedSignature},
		{"two newlines", append(append([]byte{}, env...), '\n'), "application/x-test", pub, ErrMalformedSignature},
		{"upper-case key", bytes.Replace(env, []byte(`"payload"`), []byte(`"Payload"`), 1), "application/x-test", pub, ErrMalformedSignature},
		{"unknown field", bytes.Replace(env, []byte(`{"payloadType"`), []byte(`{"x":1,"payloadType"`), 1), "application/x-test", pub, ErrMalformedSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := VerifyEnvelope(tt.env, tt.typ, tt.pub); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestVerifyEnvelopeEveryByteFlip(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	env, err := SignEnvelope(priv, "application/x-test", []byte(`{"a":1}`))
	if err != nil {
		t.Fatal(err)
	}
	for i := range env {
		for _, mask := range []byte{0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80} {
			mut := append([]byte{}, env...)
			mut[i] ^= mask
			if _, err := VerifyEnvelope(mut, "application/x-test", pub); err == nil {
				t.Fatalf("flipping byte %d (%q) with %#x still verifies", i, env[i], mask)
			}
		}
	}
}
