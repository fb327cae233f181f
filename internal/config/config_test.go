package config

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(body), 0o644)
		return p
	}
	_, vkey, err := note.GenerateKey(rand.Reader, "witness.example")
	if err != nil {
		t.Fatal(err)
	}
	_, vkey2, _ := note.GenerateKey(rand.Reader, "witness2.example")
	badHash := strings.Replace(vkey, "+", "+0", 1)[:len("witness.example+")+8] + vkey[len("witness.example+")+8:]
	if badHash == vkey {
		t.Fatal("bad hash equals the good one")
	}
	tests := []struct {
		name, body, wantErr string
		explicit            bool
		want                Config
	}{
		{name: "good", body: "user = \"maya\"\nenforcer = \"auto\"\n", want: Config{User: "maya", Enforcer: "auto"}},
		{name: "tpm socket", body: "tpm_socket = \"/run/swtpm/sock\"\n", want: Config{TPMSocket: "/run/swtpm/sock"}},
		{name: "unknown", body: "usr = \"maya\"\n", wantErr: "unknown keys: usr"},
		{name: "enforcer", body: "enforcer = \"magic\"\n", wantErr: "must be auto, portable or bpf-lsm"},
		{name: "syntax", body: "user = \n", wantErr: "config"},
		{name: "broker", body: "broker_addr = \"127.0.0.1:7878\"\n[broker]\npolicy = \"fifo\"\nslots = 4\nupstream_url = \"http://127.0.0.1:8000/v1\"\nupstream_key_file = \"/etc/coconut/upstream.key\"\n[broker.sim]\ndecode_us = 200\n",
			want: Config{BrokerAddr: "127.0.0.1:7878", Broker: Broker{Policy: "fifo", Slots: 4, UpstreamURL: "http://127.0.0.1:8000/v1", UpstreamKeyFile: "/etc/coconut/upstream.key", Sim: Sim{DecodeUS: 200}}}},
		{name: "broker unknown key", body: "[broker]\nupstream_key = \"sk-123\"\n", wantErr: "unknown keys: broker.upstream_key"},
		{name: "broker policy", body: "[broker]\npolicy = \"lottery\"\n", wantErr: "must be vtc or fifo"},
		{name: "broker over budget", body: "[broker]\nover_budget = \"maybe\"\n", wantErr: "must be wait or reject"},
		{name: "broker negative slots", body: "[broker]\nslots = -2\n", wantErr: "slots -2"},
		{name: "broker url", body: "[broker]\nupstream_url = \"ftp://x\"\n", wantErr: "upstream_url"},
		{name: "broker url credentials", body: "[broker]\nupstream_url = \"http://u:sk@x/v1\"\n", wantErr: "without credentials"},
		{name: "broker key file alone", body: "[broker]\nupstream_key_file = \"/k\"\n", wantErr: "without upstream_url"},
		{name: "broker jitter", body: "[broker.sim]\njitter = 1.0\n", wantErr: "jitter"},
		{name: "quota defaults", body: "[quota.defaults]\npids = 64\nmemory = \"10%\"\ncpu_weight = 50\n",
			want: Config{Quota: Quota{Defaults: QuotaDefaults{Pids: "64", Memory: "10%", CPUWeight: 50}}}},
		{name: "quota defaults max", body: "[quota.defaults]\npids = \"max\"\nmemory = \"max\"\n",
			want: Config{Quota: Quota{Defaults: QuotaDefaults{Pids: "max", Memory: "max"}}}},
		{name: "quota defaults bad pids", body: "[quota.defaults]\npids = 0\n", wantErr: `[quota.defaults] pids "0": want 1..`},
		{name: "quota defaults bad share", body: "[quota.defaults]\nmemory = \"150%\"\n", wantErr: "a share is 1%..100% of RAM"},
		{name: "quota defaults bool", body: "[quota.defaults]\npids = true\n", wantErr: "want an integer or a string"},
		{name: "quota defaults unknown", body: "[quota.defaults]\ntasks = 5\n", wantErr: "unknown keys: quota.defaults.tasks"},
		{name: "export otlp", body: "[export.otlp]\nendpoint = \"127.0.0.1:4317\"\nprotocol = \"grpc\"\ninsecure = true\nheaders_file = \"/etc/coconut/otlp.headers\"\ntimeout = \"5s\"\nbatch_rows = 256\n",
			want: Config{Export: Export{OTLP: ExportOTLP{Endpoint: "127.0.0.1:4317", Protocol: "grpc", Insecure: true, HeadersFile: "/etc/coconut/otlp.headers", Timeout: "5s", BatchRows: 256}}}},
		{name: "export otlp protocol", body: "[export.otlp]\nendpoint = \"c:4317\"\nprotocol = \"udp\"\n", wantErr: "[export.otlp] protocol \"udp\""},
		{name: "export otlp timeout", body: "[export.otlp]\nendpoint = \"c:4317\"\ntimeout = \"soon\"\n", wantErr: "timeout \"soon\""},
		{name: "export otlp no endpoint", body: "[export.otlp]\nprotocol = \"http\"\n", wantErr: "without an endpoint"},
		{name: "export otlp unknown", body: "[export.otlp]\nendpoint = \"c:4317\"\nheaders = 1\n", wantErr: "unknown keys: export.otlp.headers"},
		{name: "broker metrics grace", body: "[broker]\nmetrics_grace = \"90s\"\n", want: Config{Broker: Broker{MetricsGrace: "90s"}}},
		{name: "broker metrics grace bad", body: "[broker]\nmetrics_grace = \"a while\"\n", wantErr: `metrics_grace "a while"`},
		{name: "broker metrics grace negative", body: "[broker]\nmetrics_grace = \"-1m\"\n", wantErr: "must not be negative"},
		{name: "witness", body: "[[witness]]\nurl = \"https://witness.example/\"\nvkey = \"" + vkey + "\"\ntimeout = \"3s\"\n[[witness]]\nurl = \"http://127.0.0.1:8080\"\nvkey = \"" + vkey2 + "\"\n",
			want: Config{Witnesses: []Witness{{URL: "https://witness.example/", VKey: vkey, Timeout: "3s"}, {URL: "http://127.0.0.1:8080", VKey: vkey2}}}},
		{name: "witness no url", body: "[[witness]]\nvkey = \"" + vkey + "\"\n", wantErr: "[[witness]] 1: url: missing"},
		{name: "witness url scheme", body: "[[witness]]\nurl = \"ftp://w\"\nvkey = \"" + vkey + "\"\n", wantErr: "want an http:// or https:// URL"},
		{name: "witness url host", body: "[[witness]]\nurl = \"https:///x\"\nvkey = \"" + vkey + "\"\n", wantErr: "no host"},
		{name: "witness url credentials", body: "[[witness]]\nurl = \"https://u:p@w/\"\nvkey = \"" + vkey + "\"\n", wantErr: "credentials in the URL are refused"},
		{name: "witness url query", body: "[[witness]]\nurl = \"https://w/?a=1\"\nvkey = \"" + vkey + "\"\n", wantErr: "no query or fragment"},
		{name: "witness no vkey", body: "[[witness]]\nurl = \"https://w/\"\n", wantErr: "vkey: missing"},
		{name: "witness vkey hash", body: "[[witness]]\nurl = \"https://w/\"\nvkey = \"" + badHash + "\"\n", wantErr: "does not match the key"},
		{name: "witness vkey form", body: "[[witness]]\nurl = \"https://w/\"\nvkey = \"witness.example\"\n", wantErr: "want NAME+HASH+KEY"},
		{name: "witness timeout", body: "[[witness]]\nurl = \"https://w/\"\nvkey = \"" + vkey + "\"\ntimeout = \"-1s\"\n", wantErr: "[[witness]] 1: timeout \"-1s\""},
		{name: "witness twice", body: "[[witness]]\nurl = \"https://w/\"\nvkey = \"" + vkey + "\"\n[[witness]]\nurl = \"https://v/\"\nvkey = \"" + vkey + "\"\n", wantErr: "[[witness]] 2: the same witness key as entry 1"},
		{name: "witness unknown key", body: "[[witness]]\nurl = \"https://w/\"\nvkey = \"" + vkey + "\"\nname = \"x\"\n", wantErr: "unknown keys: witness.name"},
		{name: "audit each use", body: "audit_each_use = true\n", want: Config{AuditEachUse: true}},
		{name: "audit each use string", body: "audit_each_use = \"yes\"\n", wantErr: "audit_each_use"},
		{name: "broker sim output", body: "[broker.sim]\noutput = \"zipf\"\n", wantErr: "sim.output"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(write(tt.name, tt.body), true)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(c, tt.want) {
				t.Fatalf("got %+v, %v", c, err)
			}
		})
	}
	if _, err := Load(filepath.Join(dir, "missing"), false); err != nil {
		t.Fatalf("missing default config: %v", err)
	}
	if _, err := Load(filepath.Join(dir, "missing"), true); err == nil {
		t.Fatal("missing explicit config accepted")
	}
}
