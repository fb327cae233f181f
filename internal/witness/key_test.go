package witness

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/coconut-os/coconut/internal/checkpoint"
)

func TestParseKey(t *testing.T) {
	_, vkey, err := note.GenerateKey(rand.Reader, "witness.example/w1")
	if err != nil {
		t.Fatal(err)
	}
	cosig, err := fnote.VKeyToCosignatureV1(vkey)
	if err != nil {
		t.Fatal(err)
	}
	name, rest, _ := strings.Cut(vkey, "+")
	hash, key, _ := strings.Cut(rest, "+")
	flip := []byte(hash)
	flip[0] ^= 1
	if flip[0] > 'f' || (flip[0] > '9' && flip[0] < 'a') {
		flip[0] = '0'
	}
	tests := []struct {
		name, vkey, wantErr string
	}{
		{"ed25519", vkey, ""},
		{"cosignature/v1", cosig, ""},
		{"padded", "  " + vkey + "\n", ""},
		{"two parts", name + "+" + hash, "want NAME+HASH+KEY"},
		{"empty name", "+" + hash + "+" + key, "name \"\""},
		{"short hash", name + "+abc+" + key, "want 8 hex digits"},
		{"wrong hash", name + "+" + string(flip) + "+" + key, "does not match the key"},
		{"other name", "other+" + hash + "+" + key, "does not match the key"},
		{"not base64", name + "+" + hash + "+!!!!", "not base64"},
		{"key type", name + "+" + hash + "+" + "CQ" + key[2:], "key type 0x09"},
		{"short key", name + "+" + hash + "+AQID", "ed25519 key of 2 bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k, err := ParseKey(tc.vkey)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if k.Name != name || k.Verifier == nil {
					t.Fatalf("parsed %+v", k)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrBadKey) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err %v, want %q", err, tc.wantErr)
			}
		})
	}
}

// TestScanFraming: entries framed here read back with checkpoint's own
// decoder (one framing for both logs); a torn last entry is cut at open,
// a damaged middle entry is an error, never skipped.
func TestScanFraming(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, CosignaturesName)
	c, err := OpenCosigLog(path)
	if err != nil {
		t.Fatal(err)
	}
	entries := [][]byte{[]byte("one\n\n— a Zm9v\n"), bytes.Repeat([]byte("x"), 5000), []byte("three")}
	for _, e := range entries {
		if err := c.Append(e); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	b, _ := os.ReadFile(path)
	notes, good, torn, err := checkpoint.DecodeEntries(b)
	if err != nil || torn || good != int64(len(b)) || len(notes) != 3 || !bytes.Equal(notes[1], entries[1]) {
		t.Fatalf("checkpoint.DecodeEntries on the cosignature log: %d notes, good %d/%d, torn %v, %v", len(notes), good, len(b), torn, err)
	}
	var got [][]byte
	g, torn, err := Scan(bytes.NewReader(b), func(_ int64, e []byte) error { got = append(got, append([]byte(nil), e...)); return nil })
	if err != nil || torn || g != good || len(got) != 3 || !bytes.Equal(got[2], entries[2]) {
		t.Fatalf("Scan: %d entries, good %d, torn %v, %v", len(got), g, torn, err)
	}
	// A torn append: cut at open, the log appends after the good prefix.
	os.WriteFile(path, append(append([]byte(nil), b...), b[:7]...), 0o600)
	if _, torn, _ := Scan(bytes.NewReader(append(append([]byte(nil), b...), b[:7]...)), func(int64, []byte) error { return nil }); !torn {
		t.Fatal("a torn tail is not reported")
	}
	c, err = OpenCosigLog(path)
	if err != nil {
		t.Fatal(err)
	}
	c.Append([]byte("four"))
	c.Close()
	b2, _ := os.ReadFile(path)
	if notes, _, torn, err := checkpoint.DecodeEntries(b2); err != nil || torn || len(notes) != 4 {
		t.Fatalf("after a cut torn tail: %d entries, torn %v, %v", len(notes), torn, err)
	}
	// A flipped byte inside the first entry: corrupt, not torn.
	bad := append([]byte(nil), b2...)
	bad[6] ^= 1
	if _, _, err := Scan(bytes.NewReader(bad), func(int64, []byte) error { return nil }); !errors.Is(err, ErrBadLog) {
		t.Fatalf("damaged entry: %v, want ErrBadLog", err)
	}
	os.WriteFile(path, bad, 0o600)
	if _, err := OpenCosigLog(path); !errors.Is(err, ErrBadLog) {
		t.Fatalf("open a damaged log: %v, want ErrBadLog", err)
	}
}

// TestNewestRefusesTampered: Newest verifies the witness's newest entry;
// a forged one (the witness's name and key hash, a made-up signature)
// after a true one is an error, not a reason to fall back to the older.
func TestNewestRefusesTampered(t *testing.T) {
	h := newHost(t)
	srv, vkey := startWitness(t, h)
	k, err := ParseKey(vkey)
	if err != nil {
		t.Fatal(err)
	}
	good := newTree(t, 30, -1)
	cp10 := good.signed(t, h.signer, 10)
	cos, err := Submit(context.Background(), srv.Client(), srv.URL, 0, nil, cp10)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), CosignaturesName)
	c, err := OpenCosigLog(path)
	if err != nil {
		t.Fatal(err)
	}
	c.Append(append(append([]byte(nil), cp10...), cos...))
	found, err := Newest(path, h.pub, []Key{k})
	if err != nil || found[0].Newest == nil || found[0].Newest.Checkpoint.Size != 10 {
		t.Fatalf("true entry: %+v %v", found, err)
	}
	sig := make([]byte, 4+8+64)
	binary.BigEndian.PutUint32(sig, k.Verifier.KeyHash())
	rand.Read(sig[4:])
	forged := append(good.signed(t, h.signer, 20), []byte("— "+k.Name+" "+base64.StdEncoding.EncodeToString(sig)+"\n")...)
	c.Append(forged)
	c.Close()
	if _, err := Newest(path, h.pub, []Key{k}); !errors.Is(err, ErrBadCosignature) {
		t.Fatalf("forged newest entry: %v, want ErrBadCosignature", err)
	}
}
