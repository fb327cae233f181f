package setup

import (
	"fmt"
	"strconv"
	"strings"
)

// Paths are where the daemon keeps its state and socket; empty means its
// default, which the file then leaves out.
type Paths struct {
	StateDir string
	Socket   string
}

// Render returns the commented coconut.toml for a. Only what differs from
// the daemon's defaults is set; the rest is shown as comments, so the file
// also documents what can be changed.
func Render(a Answers, p Paths) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	q := strconv.Quote
	w("# Coconut's configuration, written by `coconut init`.")
	w("# Run `coconut init` again to change it: it shows what it would change and")
	w("# applies it with --reconfigure. coconutd reads this file at start; restart it")
	w("# after an edit. Unknown keys are errors (a typo never falls back to a default).")
	w("")
	w("# The workstation user: agents spawned by root run as this user, in their home.")
	w("user = %s", q(a.User))
	w("")
	w("# Where coconutd keeps its keys, trust store and audit chain, and its API socket.")
	if p.StateDir != "" {
		w("state_dir = %s", q(p.StateDir))
	} else {
		w("# state_dir = \"/var/lib/coconut\"")
	}
	if p.Socket != "" {
		w("socket = %s", q(p.Socket))
	} else {
		w("# socket = \"/run/coconut/coconut.sock\"")
	}
	w("")
	w("# The capability enforcer: auto picks bpf-lsm where the kernel runs BPF LSM")
	w("# programs, else portable (Landlock + seccomp supervisor + cgroup BPF).")
	w("# `coconut doctor` says which one runs and why.")
	w("# enforcer = \"auto\"")
	w("")
	if a.TPMSocket != "" {
		w("# The TPM for the audit anchor: an swtpm data socket instead of /dev/tpmrm0.")
		w("tpm_socket = %s", q(a.TPMSocket))
		w("")
	}
	w("# The inference broker's loopback address (agents get OPENAI_BASE_URL).")
	w("# broker_addr = \"127.0.0.1:7878\"")
	w("")
	w("[broker]")
	if a.Backend == "sim" {
		w("# No upstream_url: the embedded simulator answers (no model, no GPU needed).")
		w("# To use a real OpenAI-compatible server (vLLM, llama.cpp, Ollama, a hosted API):")
		w("# upstream_url = \"http://127.0.0.1:8000/v1\"")
		w("# upstream_key_file = \"/etc/coconut/upstream.key\"")
	} else {
		w("# The OpenAI-compatible backend agents' calls go to (checked with GET /models).")
		w("upstream_url = %s", q(a.Backend))
		if a.KeyFile != "" {
			w("# A file holding its API key (never the key inline).")
			w("upstream_key_file = %s", q(a.KeyFile))
		}
	}
	w("# Each user's token budget across all their agents (lifetime, prompt +")
	w("# completion; 0: none). A request past it is refused with 429.")
	if a.Profile == "server" {
		w("user_token_budget = 10000000")
	} else {
		w("# user_token_budget = 10000000")
	}
	w("")
	w("# The Center (the web UI; `coconut center` opens it): on for a workstation,")
	w("# on a loopback port of the kernel's choosing; off for a server. Either")
	w("# way, addr = \"127.0.0.1:PORT\" fixes the port, enabled = false/true overrides.")
	w("# [center]")
	w("# enabled = %t", a.Profile == "workstation")
	w("")
	w("# Export of the audit chain to an OpenTelemetry collector (OTLP logs; off")
	w("# without an endpoint). Every row is one log record with its seq and hash,")
	w("# sent at least once from the last seq the collector acknowledged (kept in")
	w("# the state directory); `coconut doctor` and /metrics show the lag.")
	w("# [export.otlp]")
	w("# endpoint = \"127.0.0.1:4317\"     # grpc: host:port; http: host:port or a URL")
	w("# protocol = \"grpc\"               # or \"http\" (OTLP/HTTP, port 4318, /v1/logs)")
	w("# insecure = true                   # plain text (a collector on loopback); else TLS")
	w("# headers_file = \"/etc/coconut/otlp.headers\"  # \"Name: value\" lines (an API key)")
	w("# timeout = \"10s\"                 # one export call")
	w("# batch_rows = 512                  # rows per call")
	w("")
	w("# Witnesses (C2SP tlog-witness): each new signed audit checkpoint is sent to")
	w("# each, in the background, and their cosignatures kept beside the chain")
	w("# (chain/cosignatures.log), so a rewritten chain is caught even without a")
	w("# TPM: `coconut audit verify --witness VKEY`. The witness must list this")
	w("# host's log (coconutd logs its origin and verifier key). One block each.")
	w("# [[witness]]")
	w("# url = \"https://witness.example/\"   # its URL prefix (/add-checkpoint is appended)")
	w("# vkey = \"witness.example+1234abcd+AQ...\"  # its note verifier key")
	w("# timeout = \"10s\"                 # one submission")
	w("")
	w("# `coconut init`'s answers, kept so a re-run starts from them.")
	w("[setup]")
	w("# workstation (one person; Center and notifications on) or server (many")
	w("# users or tenants; no desktop; Center off; per-user token budgets).")
	w("profile = %s", q(a.Profile))
	w("# Desktop notifications when an agent is refused.")
	w("notifications = %t", a.Notifications)
	w("# Where audit checkpoints were anchored: tpm (NV index 0x0100c0c0) or fss.")
	w("anchor = %s", q(a.Anchor))
	return b.String()
}
