package integration

import (
	"bytes"
	"encoding/json"
	"math"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestBenchEnforce runs `coconut bench enforce --json` with small counts
// (it starts and stops its own coconutd) and checks what must hold
// whatever the timings: every headline figure is a finite number, no op
// started after the revoke returned succeeded, and each burst of denies is
// counted the same by the kernel, the chain's counter and the chain's rows.
func TestBenchEnforce(t *testing.T) {
	cmd := exec.Command(filepath.Join(bins, "coconut"), "bench", "enforce", "--json", "--rounds", "2",
		"--iters", "2000", "--connect-iters", "500", "--loop-iters", "20000", "--after-deny", "500",
		"--burst", "5000", "--burst-open", "300", "--idle-agents", "1")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("coconut bench enforce: %v\nstderr: %s\nstdout: %s", err, errb.String(), out.String())
	}
	var res struct {
		Headline map[string]float64 `json:"headline"`
		Revoke   struct {
			Ops            int `json:"ops"`
			Denied         int `json:"denied"`
			OpsAfterRevoke int `json:"ops_after_revoke"`
		} `json:"revoke"`
		Bursts []struct {
			Kind         string `json:"kind"`
			Ops          int    `json:"ops"`
			Denied       int    `json:"denied"`
			KernelDenies uint64 `json:"kernel_denies"`
			ChainDenies  uint64 `json:"chain_denies"`
			RingbufFull  uint64 `json:"ringbuf_full"`
			ChainRows    uint64 `json:"chain_rows"`
			Equal        bool   `json:"equal"`
		} `json:"bursts"`
	}
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("output is not the JSON object: %v\n%s", err, out.String())
	}
	for _, k := range []string{"nonagent_open_ratio", "agent_open_ratio", "agent_open_ns_added", "connect_ratio", "ops_after_revoke"} {
		if _, ok := res.Headline[k]; !ok {
			t.Errorf("headline lacks %s: %v", k, res.Headline)
		}
	}
	for k, v := range res.Headline {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			t.Errorf("headline %s = %v", k, v)
		}
	}
	for _, k := range []string{"nonagent_open_ratio", "agent_open_ratio", "connect_ratio"} {
		if res.Headline[k] <= 0 {
			t.Errorf("headline %s = %v, want a positive ratio", k, res.Headline[k])
		}
	}
	if res.Headline["ops_after_revoke"] != 0 || res.Revoke.OpsAfterRevoke != 0 {
		t.Errorf("ops succeeded after the revoke returned: %+v", res.Revoke)
	}
	if res.Revoke.Denied == 0 || res.Revoke.Ops <= res.Revoke.Denied {
		t.Errorf("revoke loop: %+v", res.Revoke)
	}
	if len(res.Bursts) != 2 {
		t.Fatalf("bursts: %+v", res.Bursts)
	}
	for _, b := range res.Bursts {
		if b.Denied != b.Ops || b.KernelDenies < uint64(b.Denied) || b.KernelDenies != b.ChainDenies ||
			b.ChainDenies != b.ChainRows || b.RingbufFull != 0 || !b.Equal {
			t.Errorf("%s burst: counters disagree: %+v", b.Kind, b)
		}
	}
}

// TestBenchNoisy runs `coconut bench noisy --json` on three flood kinds
// with small counts and checks what must hold whatever the timings: each
// kind has a victim p99 alone and beside the flood and their finite
// positive ratio, the flooder really flooded (its rows, or its denies),
// and kernel and chain deny counters agree after it was killed.
func TestBenchNoisy(t *testing.T) {
	cmd := exec.Command(filepath.Join(bins, "coconut"), "bench", "noisy", "--json", "--iters", "500",
		"--kinds", "denies,api_calls,inference")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("coconut bench noisy: %v\nstderr: %s\nstdout: %s", err, errb.String(), out.String())
	}
	var res struct {
		Headline map[string]struct {
			Victim        string         `json:"victim"`
			Alone         float64        `json:"alone_p99_ms"`
			Flood         float64        `json:"flood_p99_ms"`
			Ratio         float64        `json:"p99_ratio"`
			RowsPerS      float64        `json:"flooder_rows_per_s"`
			RowsByType    map[string]int `json:"flooder_rows_by_type"`
			State         string         `json:"flooder_state"`
			CountersEqual bool           `json:"counters_equal"`
			KernelDenies  uint64         `json:"kernel_denies"`
		} `json:"headline"`
	}
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("output is not the JSON object: %v\n%s", err, out.String())
	}
	if len(res.Headline) != 3 {
		t.Fatalf("headline has %d kinds, want denies, api_calls, inference: %s", len(res.Headline), out.String())
	}
	for kind, victim := range map[string]string{"denies": "open", "api_calls": "api", "inference": "inference"} {
		h, ok := res.Headline[kind]
		if !ok {
			t.Errorf("headline lacks %s", kind)
			continue
		}
		if h.Victim != victim || h.State == "" || !h.CountersEqual {
			t.Errorf("%s: %+v", kind, h)
		}
		for name, v := range map[string]float64{"alone_p99_ms": h.Alone, "flood_p99_ms": h.Flood, "p99_ratio": h.Ratio} {
			if !(v > 0) || math.IsInf(v, 0) {
				t.Errorf("%s: %s = %v, want a finite positive figure", kind, name, v)
			}
		}
		if math.IsNaN(h.RowsPerS) || h.RowsPerS < 0 {
			t.Errorf("%s: flooder_rows_per_s = %v", kind, h.RowsPerS)
		}
	}
	if h := res.Headline["denies"]; h.KernelDenies == 0 {
		t.Errorf("denies: the flooder was never denied: %+v", h)
	}
	if h := res.Headline["inference"]; h.RowsByType["inference.call"] == 0 {
		t.Errorf("inference: no inference.call row of the flooder while the victim ran: %+v", h)
	}
}
