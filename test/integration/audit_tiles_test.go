package integration

import (
	"context"
	"encoding/json"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/client"
	"golang.org/x/mod/sumdb/note"

	"github.com/coconut-os/coconut/internal/checkpoint"
	"github.com/coconut-os/coconut/internal/sign"
	"github.com/coconut-os/coconut/internal/statedir"
)

// TestAuditTiles: `coconut audit tiles` publishes the daemon's latest
// checkpoint as tlog-tiles, and transparency-dev's client (reading the
// directory as files) verifies the checkpoint and the last row's inclusion.
func TestAuditTiles(t *testing.T) {
	e := newEnv(t)
	e.stop(syscall.SIGTERM) // a stop signs a checkpoint at the head
	out, errOut, code := e.cli("audit", "tiles", "--json")
	var got struct {
		OK       bool   `json:"ok"`
		Dir      string `json:"dir"`
		TreeSize uint64 `json:"tree_size"`
		Origin   string `json:"origin"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &got) != nil || !got.OK || got.TreeSize == 0 || got.Dir != filepath.Join(e.state, "tiles") {
		t.Fatalf("audit tiles: %q %q exit %d", out, errOut, code)
	}
	pub, err := sign.LoadPublicKey(statedir.HostPub(e.state))
	if err != nil {
		t.Fatal(err)
	}
	vkey, _ := checkpoint.VerifierKey(got.Origin, pub)
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	f := client.FileFetcher{Root: got.Dir}
	ctx := context.Background()
	cp, _, _, err := client.FetchCheckpoint(ctx, f.ReadCheckpoint, v, checkpoint.HostOrigin(pub))
	if err != nil || cp.Size != got.TreeSize {
		t.Fatalf("their client on our tiles: %+v %v", cp, err)
	}
	last := cp.Size - 1
	b, err := client.GetEntryBundle(ctx, f.ReadEntryBundle, last/256, cp.Size)
	if err != nil {
		t.Fatal(err)
	}
	pb, _ := client.NewProofBuilder(ctx, cp.Size, f.ReadTile)
	p, err := pb.InclusionProof(ctx, last)
	if err != nil {
		t.Fatal(err)
	}
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, last, cp.Size, rfc6962.DefaultHasher.HashLeaf(b.Entries[last%256]), p, cp.Hash); err != nil {
		t.Fatalf("inclusion of the last row: %v", err)
	}
}
