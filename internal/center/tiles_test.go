package center

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/client"
	"golang.org/x/mod/sumdb/note"

	"github.com/coconut-os/coconut/internal/checkpoint"
	"github.com/coconut-os/coconut/internal/tiles"
)

// TestServeTiles: the Center serves a tiles directory read-only on its
// loopback address; transparency-dev's client verifies a checkpoint and an
// inclusion proof through it; paths outside the layout, or outside the
// directory, are refused.
func TestServeTiles(t *testing.T) {
	state := t.TempDir()
	dir := filepath.Join(state, tiles.DirName)
	if err := os.WriteFile(filepath.Join(state, "secret"), []byte("host key"), 0o600); err != nil {
		t.Fatal(err)
	}
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaves := make([][]byte, 300)
	hashes := make([][]byte, len(leaves))
	for i := range leaves {
		leaves[i] = []byte(fmt.Sprintf(`{"seq":%d}`, i+1))
		hashes[i] = rfc6962.DefaultHasher.HashLeaf(leaves[i])
	}
	origin := checkpoint.HostOrigin(pub)
	cp := checkpoint.Checkpoint{Origin: origin, Size: uint64(len(leaves)), Root: [32]byte(rootOf(hashes))}
	signer, err := checkpoint.NewSigner(origin, key)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := checkpoint.Sign(cp, signer)
	if err != nil {
		t.Fatal(err)
	}
	if err := tiles.Write(dir, cp, signed, leaves); err != nil {
		t.Fatal(err)
	}

	c, err := Listen(Config{Addr: "127.0.0.1:0", Tiles: dir, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	// The Center's own handler on its own listener (Serve would also start
	// the stats sampler, which needs an agent manager this test has not).
	srv := &http.Server{Handler: c, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(c.ln) }()
	defer srv.Close()
	base := "http://" + c.Addr() + "/tiles/"
	u, _ := url.Parse(base)
	f, err := client.NewHTTPFetcher(u, http.DefaultClient)
	if err != nil {
		t.Fatal(err)
	}
	vkey, _ := checkpoint.VerifierKey(origin, pub)
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	got, _, _, err := client.FetchCheckpoint(ctx, f.ReadCheckpoint, v, origin)
	if err != nil || got.Size != 300 {
		t.Fatalf("checkpoint through the Center: %+v %v", got, err)
	}
	pb, _ := client.NewProofBuilder(ctx, got.Size, f.ReadTile)
	p, err := pb.InclusionProof(ctx, 257)
	if err != nil {
		t.Fatal(err)
	}
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, 257, got.Size, hashes[257], p, got.Hash); err != nil {
		t.Fatalf("inclusion through the Center: %v", err)
	}

	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + c.Addr() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type")
	}
	for path, want := range map[string]string{
		"/tiles/checkpoint":      "text/plain; charset=utf-8",
		"/tiles/tile/0/000":      "application/octet-stream",
		"/tiles/tile/0/001.p/44": "application/octet-stream",
	} {
		if code, ct := get(path); code != 200 || ct != want {
			t.Errorf("GET %s: %d %q, want 200 %q", path, code, ct, want)
		}
	}
	// Entry bundles hold every agent's rows: not for any local process.
	if code, _ := get("/tiles/tile/entries/001.p/44"); code != http.StatusForbidden {
		t.Errorf("GET an entry bundle: %d, want 403", code)
	}
	for _, path := range []string{"/tiles/", "/tiles/../secret", "/tiles/%2e%2e/secret", "/tiles/tile/0/..%2f..%2fsecret",
		"/tiles/tile/0/002", "/tiles/tile/1/000", "/tiles/tile/0/000.p/3", "/tiles/checkpoint.tmp"} {
		if code, _ := get(path); code == 200 {
			t.Errorf("GET %s: served", path)
		}
	}
}

// rootOf is the RFC 6962 root of leaf hashes (the spec's recursion).
func rootOf(h [][]byte) []byte {
	if len(h) == 1 {
		return h[0]
	}
	k := 1
	for k*2 < len(h) {
		k *= 2
	}
	return rfc6962.DefaultHasher.HashChildren(rootOf(h[:k]), rootOf(h[k:]))
}
