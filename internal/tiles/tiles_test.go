package tiles

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/client"
	"golang.org/x/mod/sumdb/note"

	"github.com/coconut-os/coconut/internal/audit"
	"github.com/coconut-os/coconut/internal/checkpoint"
)

// chainWith makes a chain of n records whose checkpoint log holds a
// checkpoint at each of sizes, and closes both.
func chainWith(t *testing.T, n int, sizes ...int) (chainDir string, pub ed25519.PublicKey) {
	t.Helper()
	dir := t.TempDir()
	chainDir = filepath.Join(dir, "chain")
	if err := os.MkdirAll(chainDir, 0o700); err != nil {
		t.Fatal(err)
	}
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	log, err := checkpoint.New(checkpoint.Config{ChainDir: chainDir, TreeDir: filepath.Join(dir, "index", "merkle"), Key: key, Every: 1 << 40, Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	chain, err := audit.Open(chainDir, audit.Options{Observer: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := log.Start(chain); err != nil {
		t.Fatal(err)
	}
	next := 0
	for i := 0; i < n; i++ {
		rec := audit.CapUse(uint64(100+i%3), "fs.read", fmt.Sprintf("/data/%d", i), 4000+i, uint64(i), nil)
		if _, err := chain.Append(context.Background(), rec); err != nil {
			t.Fatal(err)
		}
		if next < len(sizes) && i+1 == sizes[next] {
			if _, err := log.Prove(uint64(i+1), 0); err != nil {
				t.Fatalf("checkpoint at %d: %v", i+1, err)
			}
			next++
		}
	}
	if err := log.Close(); err != nil {
		t.Fatal(err)
	}
	if err := chain.Close(); err != nil {
		t.Fatal(err)
	}
	return chainDir, pub
}

// TestTesseraClientVerifies publishes a chain's tiles, serves them with a
// plain file server and checks inclusion and consistency with
// transparency-dev's own client and merkle proof checkers, not ours.
func TestTesseraClientVerifies(t *testing.T) {
	const small, large = 300, 70000 // partial tiles at level 0 and 1, full ones at 0 and 1
	chainDir, pub := chainWith(t, large, small, large)
	dir := t.TempDir()
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	defer srv.Close()
	u, _ := url.Parse(srv.URL + "/")
	f, err := client.NewHTTPFetcher(u, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	origin := checkpoint.HostOrigin(pub)
	vkey, err := checkpoint.VerifierKey(origin, pub)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	if _, err := FromChain(chainDir, pub, dir, small); err != nil {
		t.Fatal(err)
	}
	cp1, _, _, err := client.FetchCheckpoint(ctx, f.ReadCheckpoint, v, origin)
	if err != nil {
		t.Fatalf("their client refuses our checkpoint: %v", err)
	}
	if cp1.Size != small || cp1.Origin != origin {
		t.Fatalf("checkpoint 1: size %d origin %q", cp1.Size, cp1.Origin)
	}
	checkInclusion(t, ctx, f, cp1.Size, cp1.Hash, 0, 1, 255, 256, small-1)

	pubd, err := FromChain(chainDir, pub, dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	if pubd.Size != large {
		t.Fatalf("published size %d, want the latest %d", pubd.Size, large)
	}
	cp2, _, _, err := client.FetchCheckpoint(ctx, f.ReadCheckpoint, v, origin)
	if err != nil {
		t.Fatal(err)
	}
	checkInclusion(t, ctx, f, cp2.Size, cp2.Hash, 0, 299, 65535, 65536, 65537, large-1)
	pb, err := client.NewProofBuilder(ctx, cp2.Size, f.ReadTile)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := pb.ConsistencyProof(ctx, cp1.Size, cp2.Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, cp1.Size, cp2.Size, cons, cp1.Hash, cp2.Hash); err != nil {
		t.Fatalf("consistency %d -> %d: %v", cp1.Size, cp2.Size, err)
	}
	// A root that is not the first checkpoint's is refused by the same check.
	bad := append([]byte(nil), cp1.Hash...)
	bad[0] ^= 1
	if proof.VerifyConsistency(rfc6962.DefaultHasher, cp1.Size, cp2.Size, cons, bad, cp2.Hash) == nil {
		t.Fatal("a forked earlier root passed the consistency check")
	}
}

// checkInclusion fetches each index's entry from its bundle and checks its
// inclusion proof, built from the tiles by their ProofBuilder.
func checkInclusion(t *testing.T, ctx context.Context, f *client.HTTPFetcher, size uint64, root []byte, idx ...uint64) {
	t.Helper()
	pb, err := client.NewProofBuilder(ctx, size, f.ReadTile)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range idx {
		b, err := client.GetEntryBundle(ctx, f.ReadEntryBundle, i/256, size)
		if err != nil {
			t.Fatalf("bundle of %d: %v", i, err)
		}
		entry := b.Entries[i%256]
		if _, err := audit.DecodeRecord(entry); err != nil {
			t.Fatalf("entry %d is not a record: %v", i, err)
		}
		p, err := pb.InclusionProof(ctx, i)
		if err != nil {
			t.Fatalf("inclusion proof of %d: %v", i, err)
		}
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, i, size, rfc6962.DefaultHasher.HashLeaf(entry), p, root); err != nil {
			t.Fatalf("inclusion of %d in %d: %v", i, size, err)
		}
	}
}
