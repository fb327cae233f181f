package sign

import (
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestGenerateKeyFiles(t *testing.T) {
	prefix := filepath.Join(t.TempDir(), "new", "dir", "publisher")
	pub, err := GenerateKey(prefix)
	if err != nil {
		t.Fatalf("GenerateKey: %v", err)
	}
	tests := []struct {
		name string
		path string
		mode os.FileMode
	}{
		{"private", prefix + ".key", 0o600},
		{"public", prefix + ".pub", 0o644},
		{"parent", filepath.Dir(prefix), 0o700 | os.ModeDir},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fi, err := os.Stat(tt.path)
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode() & (os.ModePerm | os.ModeDir); got != tt.mode {
				t.Errorf("mode = %v, want %v", got, tt.mode)
			}
		})
	}
	priv, err := LoadPrivateKey(prefix + ".key")
	if err != nil {
		t.Fatalf("LoadPrivateKey: %v", err)
	}
	if !pub.Equal(priv.Public()) {
		t.Error("private key does not match the returned public key")
	}
	gotPub, err := LoadPublicKey(prefix + ".pub")
	if err != nil {
		t.Fatalf("LoadPublicKey: %v", err)
	}
	if !pub.Equal(gotPub) {
		t.Error("public key file does not match the returned public key")
	}
}

func TestGenerateKeyRefusesOverwrite(t *testing.T) {
	tests := []struct {
		name     string
		existing string
	}{
		{"key exists", ".key"},
		{"pub exists", ".pub"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := filepath.Join(t.TempDir(), "k")
			if err := os.WriteFile(prefix+tt.existing, []byte("precious"), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := GenerateKey(prefix)
			if !errors.Is(err, ErrKeyExists) {
				t.Fatalf("err = %v, want ErrKeyExists", err)
			}
			if b, _ := os.ReadFile(prefix + tt.existing); string(b) != "precious" {
				t.Error("existing file was modified")
			}
		})
	}
}

func TestLoadPrivateKeyRefusesWideMode(t *testing.T) {
	prefix := filepath.Join(t.TempDir(), "k")
	if _, err := GenerateKey(prefix); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []os.FileMode{0o640, 0o604, 0o644} {
		t.Run(mode.String(), func(t *testing.T) {
			if err := os.Chmod(prefix+".key", mode); err != nil {
				t.Fatal(err)
			}
			_, err := LoadPrivateKey(prefix + ".key")
			if !errors.Is(err, ErrKeyPermissions) {
				t.Fatalf("err = %v, want ErrKeyPermissions", err)
			}
			if !strings.Contains(err.Error(), "chmod 600") {
				t.Errorf("error %q does not tell the user how to fix it", err)
			}
		})
	}
}

func TestParsePublicKeyRejects(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	good := MarshalPublicKey(pub)
	tests := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"not pem", []byte("hello")},
		{"private block", []byte(strings.Replace(string(good), "PUBLIC KEY", "PRIVATE KEY", 2))},
		{"trailing data", append(append([]byte{}, good...), []byte("extra")...)},
		{"second key", append(append([]byte{}, good...), good...)},
		{"garbage der", []byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")},
		{"raw private bytes", priv},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParsePublicKey(tt.in); !errors.Is(err, ErrMalformedKey) {
				t.Fatalf("err = %v, want ErrMalformedKey", err)
			}
		})
	}
	t.Run("round trip", func(t *testing.T) {
		got, err := ParsePublicKey(good)
		if err != nil || !got.Equal(pub) {
			t.Fatalf("ParsePublicKey = %v, %v", got, err)
		}
	})
}

func TestKeyID(t *testing.T) {
	// All-zero key: SHA-256 of 32 zero bytes starts 66687aadf862bd776c8fc18b8e9f8e20.
	got := KeyID(make(ed25519.PublicKey, 32))
	if want := "ed25519:66687aadf862bd776c8fc18b8e9f8e20"; got != want {
		t.Errorf("KeyID = %s, want %s", got, want)
	}
	if !validKeyID(got) {
		t.Errorf("validKeyID(%s) = false", got)
	}
	for _, bad := range []string{"", "ed25519:", "rsa:66687aadf862bd776c8fc18b8e9f8e20", "ed25519:66687AADF862BD776C8FC18B8E9F8E20", "ed25519:66687aadf862bd776c8fc18b8e9f8e2"} {
		if validKeyID(bad) {
			t.Errorf("validKeyID(%q) = true", bad)
		}
	}
}
