package checkpoint

import (
	"crypto/ed25519"
	"encoding/json"
	"testing"
)

// FuzzVerifyInclusion: any proof file is refused with an error or accepted
// only if it really verifies; it never panics.
func FuzzVerifyInclusion(f *testing.F) {
	e := newEnv(f, 16)
	e.checkpointAt(f, 0, 16)
	e.fill(f, 16, 24)
	for _, seq := range []uint64{1, 17, 40} {
		p, err := e.log.Prove(seq, 16)
		if err != nil {
			f.Fatal(err)
		}
		b, _ := json.Marshal(p)
		f.Add(b)
	}
	f.Add([]byte(`{"seq":1,"record":"{}","hashes":[],"checkpoint":"x\n\n"}`))
	f.Add([]byte(`{}`))
	pub := e.pub()
	e.close(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		var p Proof
		if json.Unmarshal(b, &p) != nil {
			return
		}
		cp, rec, err := VerifyInclusion(&p, ed25519.PublicKey(pub))
		if err == nil && (rec.Seq != p.Seq || p.LeafIndex >= cp.Size) {
			t.Fatalf("accepted an inconsistent proof: %+v", p)
		}
	})
}

// FuzzDecodeEntries: the checkpoint log decoder never panics and its good
// prefix is within the input.
func FuzzDecodeEntries(f *testing.F) {
	f.Add(appendEntry(appendEntry(nil, []byte("a\n1\nAAAA\n\n— x y\n")), []byte("b")))
	f.Add([]byte{1, 0, 0, 0, 'x'})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		notes, good, _, _ := DecodeEntries(b)
		if good < 0 || good > int64(len(b)) {
			t.Fatalf("good %d outside 0..%d", good, len(b))
		}
		for _, n := range notes {
			if len(n) == 0 || len(n) > maxNote {
				t.Fatalf("note of %d bytes", len(n))
			}
		}
	})
}

// FuzzParseBody: a checkpoint body parses only if it re-encodes to itself.
func FuzzParseBody(f *testing.F) {
	f.Add("coconut/ed25519:00\n12\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n")
	f.Add("x\n01\n\n")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseBody(s)
		if err == nil && c.Body() != s {
			t.Fatalf("accepted non-canonical body %q", s)
		}
	})
}
