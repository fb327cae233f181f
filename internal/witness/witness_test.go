package witness

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	fnote "github.com/transparency-dev/formats/note"
	"github.com/transparency-dev/witness/persistence/inmemory"
	twitness "github.com/transparency-dev/witness/witness"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/coconut-os/coconut/internal/checkpoint"
)

// tree is an in-memory log of n leaves built with x/mod's tlog (not code
// under test), from which checkpoints and consistency proofs are taken.
type tree struct{ hashes []tlog.Hash }

func (t *tree) reader() tlog.HashReaderFunc {
	return func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = t.hashes[x]
		}
		return out, nil
	}
}

func newTree(tb testing.TB, n int, fork int) *tree {
	t := &tree{}
	for i := 0; i < n; i++ {
		leaf := fmt.Sprintf("row %d", i)
		if fork >= 0 && i >= fork {
			leaf += " rewritten"
		}
		h, err := tlog.StoredHashes(int64(i), []byte(leaf), t.reader())
		if err != nil {
			tb.Fatal(err)
		}
		t.hashes = append(t.hashes, h...)
	}
	return t
}

func (t *tree) signed(tb testing.TB, s note.Signer, size int64) []byte {
	root, err := tlog.TreeHash(size, t.reader())
	if err != nil {
		tb.Fatal(err)
	}
	b, err := checkpoint.Sign(checkpoint.Checkpoint{Origin: s.Name(), Size: uint64(size), Root: root}, s)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func (t *tree) proof(tb testing.TB, from, to int64) [][]byte {
	p, err := tlog.ProveTree(to, from, t.reader())
	if err != nil {
		tb.Fatal(err)
	}
	out := make([][]byte, len(p))
	for i := range p {
		out[i] = p[i][:]
	}
	return out
}

// hostKeys is a host key pair as coconutd's: a signer and a verifier of
// origin coconut/ed25519:<id>.
type hostKeys struct {
	pub    ed25519.PublicKey
	origin string
	signer note.Signer
	v      note.Verifier
}

func newHost(t testing.TB) hostKeys {
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	origin := checkpoint.HostOrigin(pub)
	s, err := checkpoint.NewSigner(origin, key)
	if err != nil {
		t.Fatal(err)
	}
	v, err := checkpoint.NewVerifier(origin, pub)
	if err != nil {
		t.Fatal(err)
	}
	return hostKeys{pub: pub, origin: origin, signer: s, v: v}
}

// startWitness runs transparency-dev's witness (in-memory persistence,
// cosignature/v1) on loopback, knowing the host's log; it returns its URL
// and verifier key.
func startWitness(t testing.TB, h hostKeys) (*httptest.Server, string) {
	skey, vkey, err := note.GenerateKey(rand.Reader, "witness.test")
	if err != nil {
		t.Fatal(err)
	}
	ws, err := fnote.NewSignerForCosignatureV1(skey)
	if err != nil {
		t.Fatal(err)
	}
	w, err := twitness.New(context.Background(), twitness.Opts{
		Persistence: inmemory.New(),
		Signers:     []note.Signer{ws},
		VerifierForLog: func(_ context.Context, o string) (note.Verifier, bool, error) {
			return h.v, o == h.origin, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /add-checkpoint", twitness.NewHTTPHandler(w).AddCheckpoint)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, vkey
}

// TestSubmitToTransparencyDevWitness runs transparency-dev's witness
// in-process on loopback: it cosigns our checkpoints, answers a stale
// old size with 409 and its size, and refuses a forked checkpoint (a
// rewritten chain re-signed with the host key) even though its signature
// is valid, with 422: ErrInconsistent.
func TestSubmitToTransparencyDevWitness(t *testing.T) {
	ctx := context.Background()
	h := newHost(t)
	host := h.signer
	srv, vkey := startWitness(t, h)
	wv, err := fnote.NewVerifierForCosignatureV1(vkey)
	if err != nil {
		t.Fatal(err)
	}

	good := newTree(t, 30, -1)
	cp10 := good.signed(t, host, 10)
	cos, err := Submit(ctx, srv.Client(), srv.URL, 0, nil, cp10)
	if err != nil {
		t.Fatalf("first checkpoint: %v", err)
	}
	if _, err := note.Open(append(append([]byte(nil), cp10...), cos...), note.VerifierList(wv)); err != nil {
		t.Fatalf("cosignature does not verify with the witness key: %v\n%s", err, cos)
	}
	cp20 := good.signed(t, host, 20)
	if _, err := Submit(ctx, srv.Client(), srv.URL, 10, good.proof(t, 10, 20), cp20); err != nil {
		t.Fatalf("consistent checkpoint: %v", err)
	}
	var ce *ConflictError
	if _, err := Submit(ctx, srv.Client(), srv.URL, 10, good.proof(t, 10, 20), cp20); !errors.As(err, &ce) || ce.Size != 20 {
		t.Fatalf("stale old size: %v, want a conflict at 20", err)
	}
	forked := newTree(t, 30, 15) // rows 16.. rewritten, re-signed with the host key
	cp30f := forked.signed(t, host, 30)
	_, err = Submit(ctx, srv.Client(), srv.URL, 20, forked.proof(t, 20, 30), cp30f)
	if !errors.Is(err, ErrRefused) || !errors.Is(err, ErrInconsistent) || errors.Is(err, ErrUnavailable) {
		t.Fatalf("forked checkpoint: %v, want refused as inconsistent", err)
	}
	if _, err := Submit(ctx, srv.Client(), srv.URL, 20, good.proof(t, 20, 30), good.signed(t, host, 30)); err != nil {
		t.Fatalf("the true checkpoint after the refused fork: %v", err)
	}
	// Another host's checkpoint: the witness does not know that log (404).
	other := newHost(t)
	_, err = Submit(ctx, srv.Client(), srv.URL, 0, nil, good.signed(t, other.signer, 5))
	if !errors.Is(err, ErrRefused) || errors.Is(err, ErrInconsistent) {
		t.Fatalf("unknown log: %v, want refused, not inconsistent", err)
	}
	// A witness that is down is unavailable (retried), not a refusal.
	srv.Close()
	if _, err := Submit(ctx, http.DefaultClient, srv.URL, 30, nil, good.signed(t, host, 30)); !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrRefused) {
		t.Fatalf("witness down: %v, want unavailable", err)
	}
}
