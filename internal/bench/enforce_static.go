package bench

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"github.com/coconut-os/coconut/api"
	"github.com/coconut-os/coconut/internal/sign"
)

// staticAgent measures open()+close() in an agent spawned from a signed
// manifest with `enforcement: static`: its reads are left to the Landlock
// floor (no supervisor round trip), which trades revocation of reads for
// speed. The bench makes and trusts a throwaway publisher key in the
// private daemon for it.
type staticAgent struct {
	manifest, sig []byte
	file          string
}

func (b *enforceBench) prepareStatic(ctx context.Context, root string) (*staticAgent, error) {
	prefix := filepath.Join(root, "bench-publisher")
	pub, err := sign.GenerateKey(prefix)
	if err != nil {
		return nil, fmt.Errorf("static agent: publisher key: %w", err)
	}
	if _, err := b.d.c.TrustAdd(ctx, sign.MarshalPublicKey(pub), "coconut bench enforce (temporary)"); err != nil {
		return nil, fmt.Errorf("static agent: trust the publisher key: %w", err)
	}
	priv, err := sign.LoadPrivateKey(prefix + ".key")
	if err != nil {
		return nil, err
	}
	q := strconv.Quote
	m := fmt.Sprintf(`apiVersion: coconut/v1
kind: Workload
metadata:
  name: bench-enforce-static
agents:
  - name: static-open
    class: bench-enforce
    command: [%s, open, --path, %s, --iters, "%d"]
    workdir: /
    capabilities: [%s]
    enforcement: static
`, q(b.f.probe), q(b.allowed), b.f.iters, q("fs.read:"+filepath.Dir(b.allowed)+"/**"))
	file := "bench-enforce-static.yaml"
	sig, err := sign.SignManifest(priv, file, []byte(m))
	if err != nil {
		return nil, fmt.Errorf("static agent: sign the manifest: %w", err)
	}
	return &staticAgent{manifest: []byte(m), sig: sig, file: file}, nil
}

// run spawns the static agent once and returns its ns/op.
func (s *staticAgent) run(ctx context.Context, d *privateDaemon) (float64, error) {
	agents, err := d.c.AgentSpawn(ctx, api.SpawnRequest{File: s.file, Manifest: s.manifest, Signature: s.sig})
	if err != nil {
		return 0, fmt.Errorf("spawn the static agent: %w", err)
	}
	if len(agents) != 1 {
		return 0, fmt.Errorf("spawn the static agent: %d agents", len(agents))
	}
	aid := agents[0].AID
	end, err := d.waitEnd(ctx, aid, 2*time.Minute)
	if err != nil {
		return 0, err
	}
	logs, err := d.logs(ctx, aid)
	if err != nil {
		return 0, err
	}
	if end.State != "Terminated-clean" {
		return 0, fmt.Errorf("static agent %d ended %s: %s; log: %s", aid, end.State, end.Reason, tail(logs))
	}
	r, err := parseProbe(logs, "open")
	if err != nil {
		return 0, fmt.Errorf("static agent %d: %w; log: %s", aid, err, tail(logs))
	}
	return r.NsPerOp, nil
}
