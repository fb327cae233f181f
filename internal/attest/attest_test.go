package attest

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/coconut-os/coconut/internal/sign"
	intoto "github.com/in-toto/attestation/go/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
)

var (
	binSHA    = strings.Repeat("ab", 32)
	scriptSHA = strings.Repeat("cd", 32)
	manSHA    = strings.Repeat("ef", 32)
)

type keys struct {
	hostPub    ed25519.PublicKey
	hostPriv   ed25519.PrivateKey
	publisher  ed25519.PublicKey
	trust      *sign.Trust
	publisherU uint32
}

func newKeys(t testing.TB) *keys {
	t.Helper()
	hostPub, hostPriv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	pubPub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := sign.OpenTrust(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Add(pubPub, 1000, "alice"); err != nil {
		t.Fatal(err)
	}
	return &keys{hostPub, hostPriv, pubPub, tr, 1000}
}

func manifestClaims(k *keys) Claims {
	return Claims{
		HostID:     "host-1234",
		AID:        42,
		Name:       "summarizer",
		Class:      "worker",
		CgroupID:   9876,
		CgroupPath: "/sys/fs/cgroup/coconut.slice/agent-42",
		SpawnTime:  time.Date(2025, 3, 1, 12, 30, 0, 123456789, time.UTC),
		Authorizer: Authorizer{UID: 1000, User: "alice", KeyID: sign.KeyID(k.publisher), Via: ViaManifest},
		Manifest: &ManifestRef{Name: "team", File: "/home/alice/team.yaml", SHA256: manSHA,
			SignerKeyID: sign.KeyID(k.publisher)},
		Binary:       Digest{Path: "/usr/bin/python3", SHA256: binSHA},
		Script:       &Digest{Path: "/home/alice/agent.py", SHA256: scriptSHA},
		Command:      []string{"/usr/bin/python3", "agent.py"},
		User:         "alice",
		UID:          1000,
		GID:          1000,
		Capabilities: []string{"fs.read:~/data/**", "net.connect:10.0.0.0/8:443"},
		Enforcement:  Enforcement{Backend: "bpf-lsm", KernelRights: []string{"file_open"}, Notes: "test"},
	}
}

func commandLineClaims() Claims {
	return Claims{
		HostID:     "host-1234",
		AID:        7,
		Authorizer: Authorizer{UID: 1000, User: "alice", Via: ViaCommandLine},
		Binary:     Digest{Path: "/bin/true", SHA256: binSHA},
		Command:    []string{"/bin/true"},
	}
}

func TestSignVerifyRoundTrip(t *testing.T) {
	k := newKeys(t)
	tests := []struct {
		name  string
		c     Claims
		trust *sign.Trust
	}{
		{"manifest with trust", manifestClaims(k), k.trust},
		{"manifest without trust", manifestClaims(k), nil},
		{"command line", commandLineClaims(), k.trust},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, err := Sign(tt.c, k.hostPriv)
			if err != nil {
				t.Fatalf("Sign: %v", err)
			}
			got, err := Verify(env, k.hostPub, tt.trust)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			want := tt.c
			want.HostKeyID = sign.KeyID(k.hostPub)
			if !got.SpawnTime.Equal(want.SpawnTime) {
				t.Errorf("SpawnTime = %v, want %v", got.SpawnTime, want.SpawnTime)
			}
			got.SpawnTime, want.SpawnTime = time.Time{}, time.Time{}
			if !reflect.DeepEqual(*got, want) {
				t.Errorf("claims differ:\n got %+v\nwant %+v", *got, want)
			}
		})
	}
}

func TestEnvelopeIsInToto(t *testing.T) {
	k := newKeys(t)
	env, err := Sign(manifestClaims(k), k.hostPriv)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := sign.VerifyEnvelope(env, "application/vnd.in-toto+json", k.hostPub)
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Type    string `json:"_type"`
		Subject []struct {
			Name   string            `json:"name"`
			Digest map[string]string `json:"digest"`
		} `json:"subject"`
		PredicateType string         `json:"predicateType"`
		Predicate     map[string]any `json:"predicate"`
	}
	if err := json.Unmarshal(payload, &st); err != nil {
		t.Fatal(err)
	}
	if st.Type != "https://in-toto.io/Statement/v1" || st.PredicateType != PredicateType ||
		len(st.Subject) != 1 || st.Subject[0].Name != "agent:host-1234/42" || st.Subject[0].Digest["sha256"] != binSHA ||
		st.Predicate["host_id"] != "host-1234" {
		t.Errorf("statement = %+v", st)
	}
}

func TestSignRejectsBadClaims(t *testing.T) {
	k := newKeys(t)
	tests := []struct {
		name string
		edit func(c *Claims)
	}{
		{"no host id", func(c *Claims) { c.HostID = "" }},
		{"zero aid", func(c *Claims) { c.AID = 0 }},
		{"aid too large", func(c *Claims) { c.AID = 1<<53 + 1 }},
		{"cgroup id too large", func(c *Claims) { c.CgroupID = 1 << 60 }},
		{"bad binary digest", func(c *Claims) { c.Binary.SHA256 = "xyz" }},
		{"upper-case digest", func(c *Claims) { c.Binary.SHA256 = strings.ToUpper(binSHA) }},
		{"bad script digest", func(c *Claims) { c.Script.SHA256 = "" }},
		{"manifest via without manifest", func(c *Claims) { c.Manifest = nil }},
		{"command line with manifest", func(c *Claims) { c.Authorizer.Via = ViaCommandLine }},
		{"unknown via", func(c *Claims) { c.Authorizer.Via = "magic" }},
		{"wrong host key id", func(c *Claims) { c.HostKeyID = sign.KeyID(k.publisher) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := manifestClaims(k)
			tt.edit(&c)
			if _, err := Sign(c, k.hostPriv); !errors.Is(err, ErrInvalidClaims) {
				t.Fatalf("err = %v, want ErrInvalidClaims", err)
			}
		})
	}
}

// signStatement signs an arbitrary statement with the host key, so tests can
// build validly signed attestations that are wrong inside.
func signStatement(t *testing.T, k *keys, c Claims, edit func(st map[string]any)) []byte {
	t.Helper()
	c.HostKeyID = sign.KeyID(k.hostPub)
	raw, _ := json.Marshal(c)
	var pred map[string]any
	if err := json.Unmarshal(raw, &pred); err != nil {
		t.Fatal(err)
	}
	st := map[string]any{
		"_type":         intoto.StatementTypeUri,
		"subject":       []any{map[string]any{"name": subjectName(c.HostID, c.AID), "digest": map[string]any{"sha256": c.Binary.SHA256}}},
		"predicateType": PredicateType,
		"predicate":     pred,
	}
	edit(st)
	payload, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	env, err := sign.SignEnvelope(k.hostPriv, PayloadType, payload)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func TestVerifyFailures(t *testing.T) {
	k := newKeys(t)
	otherPub, otherPriv, _ := ed25519.GenerateKey(nil)
	good, err := Sign(manifestClaims(k), k.hostPriv)
	if err != nil {
		t.Fatal(err)
	}
	byOther, err := Sign(manifestClaims(k), otherPriv)
	if err != nil {
		t.Fatal(err)
	}
	wrongPayloadType, _ := sign.SignEnvelope(k.hostPriv, "application/json", []byte("{}"))
	pred := func(edit func(p map[string]any)) func(st map[string]any) {
		return func(st map[string]any) { edit(st["predicate"].(map[string]any)) }
	}
	unknownSigner := manifestClaims(k)
	stranger, _, _ := ed25519.GenerateKey(nil)
	unknownSigner.Manifest.SignerKeyID = sign.KeyID(stranger)
	otherAuthorizer := manifestClaims(k)
	otherAuthorizer.Authorizer.UID = 1001
	otherAuthorizer.UID = 1001

	tests := []struct {
		name string
		env  []byte
		pub  ed25519.PublicKey
		want error
	}{
		{"signed by another key", byOther, k.hostPub, ErrSignature},
		{"verified with another key", good, otherPub, ErrSignature},
		{"wrong payload type", wrongPayloadType, k.hostPub, ErrSignature},
		{"truncated", good[:len(good)-5], k.hostPub, ErrSignature},
		{"empty", nil, k.hostPub, ErrSignature},
		{"whitespace added", bytes.Replace(good, []byte(`{"payloadType"`), []byte(`{ "payloadType"`), 1), k.hostPub, ErrSignature},
		{"legacy statement type", signStatement(t, k, manifestClaims(k), func(st map[string]any) { st["_type"] = "https://in-toto.io/Statement/v0.1" }), k.hostPub, ErrStatement},
		{"not a statement", signStatement(t, k, manifestClaims(k), func(st map[string]any) { st["bogus"] = 1 }), k.hostPub, ErrStatement},
		{"wrong predicate type", signStatement(t, k, manifestClaims(k), func(st map[string]any) { st["predicateType"] = "https://slsa.dev/provenance/v1" }), k.hostPub, ErrPredicate},
		{"no predicate", signStatement(t, k, manifestClaims(k), func(st map[string]any) { delete(st, "predicate") }), k.hostPub, ErrPredicate},
		{"unknown claim", signStatement(t, k, manifestClaims(k), pred(func(p map[string]any) { p["root"] = true })), k.hostPub, ErrPredicate},
		{"fractional aid", signStatement(t, k, manifestClaims(k), pred(func(p map[string]any) { p["aid"] = 42.5 })), k.hostPub, ErrPredicate},
		{"negative uid", signStatement(t, k, manifestClaims(k), pred(func(p map[string]any) { p["uid"] = -1 })), k.hostPub, ErrPredicate},
		{"host key id of another key", signStatement(t, k, manifestClaims(k), pred(func(p map[string]any) { p["host_key_id"] = sign.KeyID(otherPub) })), k.hostPub, ErrPredicate},
		{"two subjects", signStatement(t, k, manifestClaims(k), func(st map[string]any) {
			st["subject"] = append(st["subject"].([]any), map[string]any{"name": "x", "digest": map[string]any{"sha256": binSHA}})
		}), k.hostPub, ErrSubject},
		{"subject of another aid", signStatement(t, k, manifestClaims(k), func(st map[string]any) {
			st["subject"].([]any)[0].(map[string]any)["name"] = "agent:host-1234/43"
		}), k.hostPub, ErrSubject},
		{"subject of another host", signStatement(t, k, manifestClaims(k), func(st map[string]any) {
			st["subject"].([]any)[0].(map[string]any)["name"] = "agent:other/42"
		}), k.hostPub, ErrSubject},
		{"subject digest differs", signStatement(t, k, manifestClaims(k), func(st map[string]any) {
			st["subject"].([]any)[0].(map[string]any)["digest"] = map[string]any{"sha256": scriptSHA}
		}), k.hostPub, ErrSubject},
		{"subject extra digest", signStatement(t, k, manifestClaims(k), func(st map[string]any) {
			st["subject"].([]any)[0].(map[string]any)["digest"] = map[string]any{"sha256": binSHA, "sha512": strings.Repeat("00", 64)}
		}), k.hostPub, ErrSubject},
		{"signer not in trust store", signStatement(t, k, unknownSigner, func(map[string]any) {}), k.hostPub, ErrUntrustedSigner},
		{"signer trusted for another uid", signStatement(t, k, otherAuthorizer, func(map[string]any) {}), k.hostPub, ErrUntrustedSigner},
	}
	sentinels := []error{ErrSignature, ErrStatement, ErrPredicate, ErrSubject, ErrUntrustedSigner}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Verify(tt.env, tt.pub, k.trust)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if c != nil {
				t.Errorf("claims returned with an error")
			}
			for _, s := range sentinels {
				if s != tt.want && errors.Is(err, s) {
					t.Errorf("err %v also matches %v", err, s)
				}
			}
		})
	}

	t.Run("nil trust skips only the signer check", func(t *testing.T) {
		if _, err := Verify(signStatement(t, k, unknownSigner, func(map[string]any) {}), k.hostPub, nil); err != nil {
			t.Errorf("Verify with nil trust: %v", err)
		}
	})
}

func TestVerifyEveryByteFlip(t *testing.T) {
	k := newKeys(t)
	env, err := Sign(manifestClaims(k), k.hostPriv)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(env, k.hostPub, k.trust); err != nil {
		t.Fatalf("unmodified envelope: %v", err)
	}
	for i := range env {
		for _, mask := range []byte{0x01, 0x20, 0x80} {
			mut := append([]byte{}, env...)
			mut[i] ^= mask
			if c, err := Verify(mut, k.hostPub, k.trust); err == nil || c != nil {
				t.Fatalf("flipping byte %d (%q) with %#x is accepted", i, env[i], mask)
			}
		}
	}
}

func TestVerifyRejectsAnyWhitespace(t *testing.T) {
	k := newKeys(t)
	env, err := Sign(commandLineClaims(), k.hostPriv)
	if err != nil {
		t.Fatal(err)
	}
	body := bytes.TrimSuffix(env, []byte("\n"))
	for i := 0; i <= len(body); i++ {
		for _, ws := range []string{" ", "\t", "\n", "\r"} {
			if i == len(body) && ws == "\n" {
				continue // the one trailing newline Sign writes
			}
			mut := append(append(append([]byte{}, body[:i]...), ws...), body[i:]...)
			if _, err := Verify(mut, k.hostPub, nil); !errors.Is(err, ErrSignature) {
				t.Fatalf("inserting %q at %d: err = %v, want ErrSignature", ws, i, err)
			}
		}
	}
}

func FuzzVerify(f *testing.F) {
	k := newKeys(f)
	good, err := Sign(manifestClaims(k), k.hostPriv)
	if err != nil {
		f.Fatal(err)
	}
	cl, _ := Sign(commandLineClaims(), k.hostPriv)
	f.Add(good)
	f.Add(cl)
	f.Add(good[:len(good)/2])
	f.Add([]byte(`{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[]}`))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, env []byte) {
		c, err := Verify(env, k.hostPub, k.trust)
		if err == nil && (c == nil || c.HostKeyID != sign.KeyID(k.hostPub)) {
			t.Fatalf("accepted claims %+v", c)
		}
	})
}

// FuzzDecodeClaims exercises the predicate decoder directly, past the
// signature check the envelope fuzzer can rarely get through.
func FuzzDecodeClaims(f *testing.F) {
	k := newKeys(f)
	raw, _ := json.Marshal(manifestClaims(k))
	f.Add(raw)
	f.Add([]byte(`{"aid":1.5}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s := &structpb.Struct{}
		if protojson.Unmarshal(data, s) != nil {
			return
		}
		c, err := decodeClaims(&intoto.Statement{Predicate: s})
		if err == nil && c.validate() != nil {
			t.Fatalf("decodeClaims accepted invalid claims %+v", c)
		}
	})
}
