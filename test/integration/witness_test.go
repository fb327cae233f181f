package integration

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	fnote "github.com/transparency-dev/formats/note"
	"github.com/transparency-dev/witness/persistence/inmemory"
	twitness "github.com/transparency-dev/witness/witness"
	"golang.org/x/mod/sumdb/note"

	"github.com/coconut-os/coconut/internal/audit"
	"github.com/coconut-os/coconut/internal/checkpoint"
	"github.com/coconut-os/coconut/internal/sign"
	"github.com/coconut-os/coconut/internal/statedir"
)

type witnessDoctor struct {
	Checkpoint uint64 `json:"checkpoint"`
	Witnesses  []struct {
		Name           string `json:"name"`
		URL            string `json:"url"`
		CosignedSize   uint64 `json:"cosigned_size"`
		LagCheckpoints int    `json:"lag_checkpoints"`
		LastError      string `json:"last_error"`
		Alarm          string `json:"alarm"`
	} `json:"witnesses"`
	Report []struct {
		Group, Name, Detail string
		OK                  bool
	} `json:"report"`
	OK bool `json:"ok"`
}

func (e *env) witnessDoctor() (witnessDoctor, int) {
	out, _, code := e.cli("doctor", "--json")
	var d witnessDoctor
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		e.t.Fatalf("doctor --json: %v: %q", err, out)
	}
	return d, code
}

type verifyWitnessOut struct {
	OK        bool   `json:"ok"`
	Reason    string `json:"reason"`
	Records   uint64 `json:"records"`
	Witnesses []struct {
		Name         string `json:"name"`
		OK           bool   `json:"ok"`
		CosignedSize uint64 `json:"cosigned_size"`
		Fork         bool   `json:"fork"`
		Reason       string `json:"reason"`
	} `json:"witnesses"`
}

// TestWitnessCatchesRewrite: coconutd with a [[witness]] in coconut.toml
// submits its checkpoints to transparency-dev's witness (run in this test
// process on loopback, knowing the host's log) and stores the
// cosignatures; `audit verify --witness` passes. Then, with coconutd
// stopped, root rewrites the chain (every row and checkpoint re-signed
// with the host key, so a plain verify passes) and restarts coconutd: the
// witness refuses the new checkpoint as inconsistent, doctor raises the
// alarm and exits 1, and `audit verify --witness` fails naming the fork.
// No TPM: the chain is anchored with forward-secure seals (whose seed
// this test, like the attacker, does not have).
func TestWitnessCatchesRewrite(t *testing.T) {
	var stateDir atomic.Value // the host key is the daemon's, made at its first start
	skey, vkey, err := note.GenerateKey(rand.Reader, "witness.test")
	if err != nil {
		t.Fatal(err)
	}
	ws, err := fnote.NewSignerForCosignatureV1(skey)
	if err != nil {
		t.Fatal(err)
	}
	var refused atomic.Int64
	w, err := twitness.New(context.Background(), twitness.Opts{
		Persistence: inmemory.New(),
		Signers:     []note.Signer{ws},
		VerifierForLog: func(_ context.Context, origin string) (note.Verifier, bool, error) {
			dir, _ := stateDir.Load().(string)
			if dir == "" {
				return nil, false, nil
			}
			pub, err := sign.LoadPublicKey(statedir.HostPub(dir))
			if err != nil || checkpoint.HostOrigin(pub) != origin {
				return nil, false, nil
			}
			v, err := checkpoint.NewVerifier(origin, pub)
			return v, err == nil, err
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	h := twitness.NewHTTPHandler(w)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /add-checkpoint", func(rw http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		h.AddCheckpoint(rec, r)
		if rec.Code == http.StatusUnprocessableEntity {
			refused.Add(1)
		}
		for k, v := range rec.Header() {
			rw.Header()[k] = v
		}
		rw.WriteHeader(rec.Code)
		rw.Write(rec.Body.Bytes())
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	cfgDir := t.TempDir()
	cfg := filepath.Join(cfgDir, "coconut.toml")
	os.WriteFile(cfg, []byte("[[witness]]\nurl = \""+srv.URL+"\"\nvkey = \""+vkey+"\"\ntimeout = \"5s\"\n"), 0o644)
	vkeyFile := filepath.Join(cfgDir, "witness.vkey")
	os.WriteFile(vkeyFile, []byte(vkey+"\n"), 0o644)

	e := newEnvArgs(t, "--config", cfg)
	stateDir.Store(e.state)
	for i := 0; i < 2; i++ {
		e.must("agent", "run", "--name", "witnessed", "--workdir", "/", "--", "/bin/true")
	}
	// Cosigned up to the latest checkpoint (the first submission, before
	// the witness knew the log, is retried with backoff).
	deadline := time.Now().Add(30 * time.Second)
	for {
		d, _ := e.witnessDoctor()
		if len(d.Witnesses) != 1 {
			t.Fatalf("doctor witnesses: %+v", d.Witnesses)
		}
		x := d.Witnesses[0]
		if x.Name != "witness.test" || x.URL != srv.URL || x.Alarm != "" {
			t.Fatalf("doctor witness: %+v", x)
		}
		if x.CosignedSize > 0 && x.CosignedSize == d.Checkpoint && x.LagCheckpoints == 0 && x.LastError == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the witness did not cosign the latest checkpoint: %+v", d)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if out := e.must("doctor"); !strings.Contains(out, "witnesses:   witness.test "+srv.URL+": cosigned size") {
		t.Fatalf("doctor shows no witness line:\n%s", out)
	}
	e.stop(syscall.SIGTERM) // the final checkpoint is cosigned at stop

	verify := func(args ...string) (verifyWitnessOut, string, int) {
		out, errOut, code := e.cli(append([]string{"audit", "verify", "--json"}, args...)...)
		var v verifyWitnessOut
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			t.Fatalf("audit verify %v: %q %q: %v", args, out, errOut, err)
		}
		return v, errOut, code
	}
	good, errOut, code := verify("--witness", vkey)
	if code != 0 || !good.OK || len(good.Witnesses) != 1 || !good.Witnesses[0].OK || good.Witnesses[0].CosignedSize != good.Records {
		t.Fatalf("verify --witness of the true chain: %+v %q exit %d", good, errOut, code)
	}
	if v, _, code := verify("--witness", "@"+vkeyFile); code != 0 || !v.OK {
		t.Fatalf("verify --witness @FILE: %+v exit %d", v, code)
	}
	// A witness that never cosigned: fails, saying so.
	_, otherKey, _ := note.GenerateKey(rand.Reader, "other.witness")
	if v, _, code := verify("--witness", otherKey); code == 0 || v.OK || !strings.Contains(v.Reason, "other.witness has cosigned no checkpoint") {
		t.Fatalf("verify --witness with a key that never cosigned: %+v exit %d", v, code)
	}

	// The rewrite: a longer history made with the host key, checkpoints
	// re-signed; seals, cosignatures and witness state left as they were.
	forgeChain(t, e.state, good.Records+20)
	if v, errOut, code := verify(); code != 0 || !v.OK {
		t.Fatalf("the forged chain should pass a verify without witness or seal key (that is the attack): %+v %q", v, errOut)
	}
	e.startAnyDoctor()
	deadline = time.Now().Add(30 * time.Second)
	var d witnessDoctor
	for {
		var code int
		d, code = e.witnessDoctor()
		if len(d.Witnesses) == 1 && d.Witnesses[0].Alarm != "" {
			if code == 0 || d.OK {
				t.Fatalf("doctor exits %d with a fork alarm", code)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no alarm after the rewrite: %+v", d)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if a := d.Witnesses[0].Alarm; !strings.Contains(a, "FORK") || !strings.Contains(a, "witness.test") || refused.Load() == 0 {
		t.Fatalf("alarm %q, witness refusals %d", a, refused.Load())
	}
	out, _, _ := e.cli("doctor")
	if !strings.Contains(out, "ALARM      witness witness.test refused checkpoint") || !strings.Contains(out, "FAIL fork") {
		t.Fatalf("doctor's human output has no fork alarm:\n%s", out)
	}
	t.Logf("doctor after the rewrite:\n%s", out)
	e.stop(syscall.SIGTERM)
	bad, errOut, code := verify("--witness", vkey)
	if code == 0 || bad.OK || len(bad.Witnesses) != 1 || !bad.Witnesses[0].Fork || bad.Witnesses[0].CosignedSize != good.Records ||
		!strings.Contains(errOut, "FORK: witness witness.test cosigned a checkpoint of size") {
		t.Fatalf("verify --witness of the rewritten chain: %+v %q exit %d", bad, errOut, code)
	}
	t.Logf("verify --witness of the rewritten chain: exit %d: %s", code, errOut)
}

// forgeChain replaces the chain in stateDir by n rows of another history,
// with checkpoints every 10 rows, all signed with the host key; the
// rebuildable indexes go too, as an attacker would remove them.
func forgeChain(t *testing.T, stateDir string, n uint64) {
	t.Helper()
	key, err := sign.LoadPrivateKey(statedir.HostKeyPrefix(stateDir) + ".key")
	if err != nil {
		t.Fatal(err)
	}
	forge := t.TempDir()
	cd := filepath.Join(forge, "chain")
	os.MkdirAll(cd, 0o700)
	lg, err := checkpoint.New(checkpoint.Config{ChainDir: cd, TreeDir: filepath.Join(forge, "merkle"), Key: key, Every: 10, Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	c, err := audit.Open(cd, audit.Options{Observer: lg})
	if err != nil {
		t.Fatal(err)
	}
	if err := lg.Start(c); err != nil {
		t.Fatal(err)
	}
	keyID := sign.KeyID(key.Public().(ed25519.PublicKey))
	for i := uint64(1); i <= n; i++ {
		if _, err := c.Append(context.Background(), audit.DaemonStart("forged", int(1000+i), keyID, "portable")); err != nil {
			t.Fatal(err)
		}
		if i%10 == 0 {
			if _, err := lg.Prove(i, 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := lg.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	chain := statedir.Chain(stateDir)
	old, _ := filepath.Glob(filepath.Join(chain, "*.seg*"))
	for _, p := range append(old, filepath.Join(chain, checkpoint.LogName)) {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	forged, _ := filepath.Glob(filepath.Join(cd, "*.seg"))
	for _, p := range append(forged, filepath.Join(cd, checkpoint.LogName)) {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(chain, filepath.Base(p)), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.RemoveAll(filepath.Join(stateDir, "index")); err != nil {
		t.Fatal(err)
	}
}

// startAnyDoctor starts coconutd again and waits until doctor answers
// with the daemon's report, whatever its exit code (a fork alarm makes
// doctor exit 1, which the harness's start would wait on forever).
func (e *env) startAnyDoctor() {
	e.t.Helper()
	e.startUntil(func() bool {
		out, _, _ := e.cli("doctor", "--json")
		var d struct {
			PID int `json:"pid"`
		}
		return json.Unmarshal([]byte(out), &d) == nil && d.PID == e.daemon.Process.Pid
	})
}
