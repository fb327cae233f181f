package setup

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coconut-os/coconut/internal/config"
)

func TestRenderLoads(t *testing.T) {
	tests := []struct {
		name  string
		a     Answers
		paths Paths
	}{
		{"workstation sim", Answers{Profile: "workstation", User: "maya", Backend: "sim", Anchor: "fss", Notifications: true}, Paths{}},
		{"server upstream", Answers{Profile: "server", User: "ops", Backend: "http://127.0.0.1:8000/v1", KeyFile: "/etc/coconut/up.key", Anchor: "tpm"},
			Paths{StateDir: "/tmp/s \"quoted\"", Socket: "/tmp/s/sock"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "coconut.toml")
			if err := os.WriteFile(p, []byte(Render(tt.a, tt.paths)), 0o644); err != nil {
				t.Fatal(err)
			}
			c, err := config.Load(p, true)
			if err != nil {
				t.Fatal(err)
			}
			if c.User != tt.a.User || c.StateDir != tt.paths.StateDir || c.Socket != tt.paths.Socket || c.Setup.Profile != tt.a.Profile ||
				c.Setup.Anchor != tt.a.Anchor || c.Setup.Notifications == nil || *c.Setup.Notifications != tt.a.Notifications {
				t.Fatalf("loaded %+v from answers %+v", c, tt.a)
			}
			if tt.a.Backend == "sim" && c.Broker.UpstreamURL != "" || tt.a.Backend != "sim" && (c.Broker.UpstreamURL != tt.a.Backend || c.Broker.UpstreamKeyFile != tt.a.KeyFile) {
				t.Fatalf("broker %+v from %+v", c.Broker, tt.a)
			}
			// The answers a re-run starts from are the ones written.
			d := Defaults(&c)
			d.Anchor = tt.a.Anchor // the machine decides this default
			if err := d.Finish(); err != nil && !strings.Contains(err.Error(), "anchor") {
				t.Fatal(err)
			}
			if Render(d, tt.paths) != Render(tt.a, tt.paths) {
				t.Fatalf("defaults from the file render differently:\n%s", Render(d, tt.paths))
			}
		})
	}
}

func TestAskFromStdin(t *testing.T) {
	a := Answers{Profile: "workstation", User: "maya", Backend: "sim", Anchor: "fss"}
	anchor := "" // the default: whatever this machine has
	in := strings.NewReader("bogus\nserver\nbob\nhttp://127.0.0.1:9/v1\n/etc/coconut/k\n" + anchor + "\n\n")
	var out strings.Builder
	if err := a.Ask(in, &out, map[string]bool{}); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if err := a.Finish(); err != nil {
		t.Fatal(err)
	}
	if a.Profile != "server" || a.User != "bob" || a.Backend != "http://127.0.0.1:9/v1" || a.KeyFile != "/etc/coconut/k" || a.Notifications {
		t.Fatalf("answers %+v", a)
	}
	if !strings.Contains(out.String(), `profile "bogus": answer workstation or server`) || strings.Count(out.String(), "/5 ") != 5 {
		t.Fatalf("prompts:\n%s", out.String())
	}
	// A question left unanswered at the end of input is an error, not a guess.
	b := Answers{Profile: "workstation", User: "maya", Backend: "sim", Anchor: "fss"}
	if err := b.Ask(strings.NewReader("server\n"), &out, map[string]bool{}); err == nil || !strings.Contains(err.Error(), "no answer") {
		t.Fatalf("short input: %v", err)
	}
	// Flags fix questions: they are not asked.
	c := Answers{Profile: "workstation", User: "maya", Backend: "sim", Anchor: "fss"}
	out.Reset()
	if err := c.Ask(strings.NewReader("\n"), &out, map[string]bool{"profile": true, "user": true, "backend": true, "anchor": true}); err != nil {
		t.Fatal(err)
	}
	if strings.Count(out.String(), "/5 ") != 1 {
		t.Fatalf("asked more than the one open question:\n%s", out.String())
	}
}

func TestAnswersRefused(t *testing.T) {
	for _, tt := range []struct{ key, value, want string }{
		{"user", "root", "must not run as root"},
		{"user", "a/b", "not a user name"},
		{"backend", "ftp://x", "answer sim or http(s)"},
		{"backend", "http://u:p@host/v1", "no credentials"},
		{"notifications", "maybe", "answer on or off"},
		{"anchor", "disk", "answer tpm or fss"},
	} {
		t.Run(tt.key+"="+tt.value, func(t *testing.T) {
			var a Answers
			if err := a.Set(tt.key, tt.value); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Set(%s, %s) = %v, want %q", tt.key, tt.value, err, tt.want)
			}
		})
	}
}

func TestCheckBackend(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/v1/models" && r.Header.Get("Authorization") == "Bearer sekrit":
			w.Write([]byte(`{"object":"list","data":[{"id":"llama-3","object":"model"},{"id":"qwen","object":"model"}]}`))
		case r.URL.Path == "/v1/models":
			http.Error(w, `{"error":"bad key"}`, http.StatusUnauthorized)
		case r.URL.Path == "/html/models":
			w.Write([]byte("<html>hello</html>"))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	key := filepath.Join(t.TempDir(), "key")
	os.WriteFile(key, []byte("sekrit\n"), 0o600)
	ctx := context.Background()
	ids, err := CheckBackend(ctx, srv.URL+"/v1/", key)
	if err != nil || strings.Join(ids, ",") != "llama-3,qwen" {
		t.Fatalf("models %v, %v", ids, err)
	}
	if _, err := CheckBackend(ctx, srv.URL+"/v1", ""); err == nil || !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), "check the key file") {
		t.Fatalf("no key: %v", err)
	}
	if _, err := CheckBackend(ctx, srv.URL+"/html", ""); err == nil || !strings.Contains(err.Error(), "not an OpenAI model list") {
		t.Fatalf("html: %v", err)
	}
	if _, err := CheckBackend(ctx, srv.URL+"/nothing", ""); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("404: %v", err)
	}
	srv.Close()
	if _, err := CheckBackend(ctx, srv.URL+"/v1", ""); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("closed: %v", err)
	}
}

func TestLineDiff(t *testing.T) {
	d := lineDiff([]byte("# c\nuser = \"a\"\n[setup]\nprofile = \"workstation\"\n"), []byte("# other\nuser = \"a\"\n[setup]\nprofile = \"server\"\n"))
	if strings.Join(d, ";") != `-profile = "workstation";+profile = "server"` {
		t.Fatalf("diff %q", d)
	}
}
