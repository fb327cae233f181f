package integration

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coconut-os/coconut/internal/sign"
)

// TestBadManifestsSpawnNothing feeds every kind of bad manifest to a real
// daemon: each gets a precise error, nothing is spawned, and the daemon
// keeps serving.
func TestBadManifestsSpawnNothing(t *testing.T) {
	e := newEnv(t)
	e.demo()
	key := e.trustedKey("maya")
	good := oneAgent("ok", "/bin/sleep", "600")
	tests := []struct {
		name, body, want string
	}{
		{"malformed yaml", "apiVersion: coconut/v1\nkind: [Workload\n", "bad.yaml:"},
		{"unknown field", strings.Replace(good, "    workdir: /\n", "    workdir: /\n    colour: blue\n", 1), "bad.yaml:9: agents[0].colour: unknown field"},
		{"duplicate names", good + "  - name: ok\n    command: [/bin/true]\n", "agents[1].name"},
		{"replicas 0", strings.Replace(good, "    workdir: /\n", "    workdir: /\n    replicas: 0\n", 1), "agents[0].replicas"},
		{"replicas 100000", strings.Replace(good, "    workdir: /\n", "    workdir: /\n    replicas: 100000\n", 1), "agents[0].replicas"},
		{"missing command", oneAgent("ok", "/usr/bin/no-such-program"), "bad.yaml:7: agents[0].command[0]: open /usr/bin/no-such-program: no such file"},
		{"relative command", oneAgent("ok", "bin/sleep"), "agents[0].command[0]"},
		{"dotdot command", oneAgent("ok", "/usr/../bin/sleep"), "agents[0].command[0]"},
		{"relative workdir", strings.Replace(good, "workdir: /", "workdir: tmp", 1), "agents[0].workdir"},
		{"dotdot capability", strings.Replace(good, "    workdir: /\n", "    workdir: /\n    capabilities: [\"fs.read:/home/../etc/**\"]\n", 1), "agents[0].capabilities[0]"},
		{"wrong api version", strings.Replace(good, "coconut/v1", "coconut/v2", 1), "bad.yaml:1: apiVersion"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(e.dir, "bad.yaml")
			os.WriteFile(path, []byte(tt.body), 0o644)
			// Sign even a broken manifest (the CLI refuses to): the daemon
			// must parse what a trusted key signed just as carefully.
			os.WriteFile(path+".sig", signBytes(t, key, path), 0o644)
			_, errs, code := e.cli("agent", "spawn", path)
			if code != 1 || !strings.Contains(errs, tt.want) {
				t.Fatalf("exit %d, stderr %q; want 1 and %q", code, errs, tt.want)
			}
			if n := len(e.agents(true)); n != 0 {
				t.Fatalf("%d agents exist after a refused spawn", n)
			}
		})
	}
	e.must("doctor")
}

// signBytes signs a file with the library the CLI uses, without the CLI's
// own validation.
func signBytes(t *testing.T, keyPath, path string) []byte {
	t.Helper()
	priv, err := sign.LoadPrivateKey(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	sig, err := sign.SignManifest(priv, path, data)
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

func TestSignatureRefusals(t *testing.T) {
	e := newEnv(t)
	e.demo()
	key := e.trustedKey("maya")
	good := oneAgent("ok", "/bin/sleep", "600")
	path := e.writeSigned("m.yaml", good, key)
	sig, _ := os.ReadFile(path + ".sig")

	// An untrusted key: generated but never added.
	stranger := filepath.Join(e.dir, "stranger")
	e.must("key", "gen", "--out", stranger)
	strangerPath := e.writeSigned("s.yaml", good, stranger+".key")

	tests := []struct {
		name  string
		setup func() string
		want  string
	}{
		{"unsigned", func() string {
			p := filepath.Join(e.dir, "u.yaml")
			os.WriteFile(p, []byte(good), 0o644)
			return p
		}, "not signed"},
		{"untrusted key", func() string { return strangerPath }, "coconut trust add"},
		{"altered one byte", func() string {
			p := filepath.Join(e.dir, "a.yaml")
			os.WriteFile(p, bytes.Replace([]byte(good), []byte("600"), []byte("601"), 1), 0o644)
			os.WriteFile(p+".sig", sig, 0o644)
			return p
		}, "altered after signing"},
		{"truncated sig", func() string {
			p := filepath.Join(e.dir, "t.yaml")
			os.WriteFile(p, []byte(good), 0o644)
			os.WriteFile(p+".sig", sig[:len(sig)/2], 0o644)
			return p
		}, "t.yaml: verify manifest: malformed signature"},
		{"foreign sig", func() string {
			p := filepath.Join(e.dir, "f.yaml")
			os.WriteFile(p, []byte(good), 0o644)
			os.WriteFile(p+".sig", []byte(`{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[]}`), 0o644)
			return p
		}, "f.yaml: verify manifest: malformed signature: payload type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errs, code := e.cli("agent", "spawn", tt.setup())
			if code != 1 || !strings.Contains(errs, tt.want) {
				t.Fatalf("exit %d, stderr %q; want 1 and %q", code, errs, tt.want)
			}
			if n := len(e.agents(true)); n != 0 {
				t.Fatalf("%d agents after a refused spawn", n)
			}
		})
	}
	// Each refusal is itself in the chain.
	if n := len(e.rows("--type", "spawn.refused")); n != len(tests) {
		t.Errorf("%d spawn.refused rows, want %d", n, len(tests))
	}
	// And the untouched, signed manifest still spawns.
	e.must("agent", "spawn", path)
}

func TestBadAPIRequests(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name   string
		method string
		path   string
		body   []byte
		hdr    map[string]string
		status int
		want   string
	}{
		{"wrong type", "POST", "/v1/agents", []byte(`{"manifest": 42}`), nil, 400, `field \"manifest\"`},
		{"unknown field", "POST", "/v1/agents", []byte(`{"manifesto": "x"}`), nil, 400, "unknown field"},
		{"not json", "POST", "/v1/agents/run", []byte(`{{`), nil, 400, "malformed JSON"},
		{"two values", "POST", "/v1/agents/run", []byte(`{} {}`), nil, 400, "trailing data"},
		{"empty body", "POST", "/v1/trust", nil, nil, 400, "empty"},
		{"50 MB body", "POST", "/v1/agents", append(append([]byte(`{"file":"`), bytes.Repeat([]byte("a"), 50<<20)...), '"', '}'), nil, 413, "over"},
		{"bad aid", "GET", "/v1/agents/zero", nil, nil, 400, "positive 64-bit number"},
		{"unknown agent", "GET", "/v1/agents/77", nil, nil, 404, "no agent 77"},
		{"unknown call", "GET", "/v1/nothing", nil, nil, 404, "no such call"},
		{"from a web page", "GET", "/v1/agents", nil, map[string]string{"Origin": "http://evil.example"}, 403, "web pages"},
		{"grant to no agent", "POST", "/v1/agents/1/caps/grant", []byte(`{"caps":["x.a.b"]}`), nil, 404, "no agent 1"},
		{"bad audit limit", "GET", "/v1/audit?limit=0", nil, nil, 400, "limit"},
	}
	fdsBefore := openFDs(t, e.daemon.Process.Pid)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := e.raw(tt.method, tt.path, tt.body, tt.hdr)
			if status != tt.status || !strings.Contains(body, tt.want) {
				t.Fatalf("status %d body %.300q; want %d and %q", status, body, tt.status, tt.want)
			}
			if !strings.Contains(body, `"code"`) {
				t.Fatalf("no error envelope: %q", body)
			}
		})
	}
	e.must("doctor")
	// Connections are closed and their peer pidfds with them: the daemon
	// does not leak descriptors on bad requests.
	deadline := time.Now().Add(5 * time.Second)
	for {
		after := openFDs(t, e.daemon.Process.Pid)
		if after <= fdsBefore {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon holds %d fds, %d before the requests", after, fdsBefore)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func openFDs(t *testing.T, pid int) int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}
