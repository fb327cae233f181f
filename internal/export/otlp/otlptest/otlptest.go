// Package otlptest holds the test rows and chain helpers the export's tests
// share: the package's own and the Collector tests in test/otlpcollector, a
// module of its own that cannot see the package's _test files.
package otlptest

import (
	"context"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/coconut-os/coconut/internal/audit"
)

// Row is test row i: one of the kinds export maps onto GenAI conventions,
// or a plain deny.
func Row(i int) audit.Record {
	aid := uint64(1 + i%5)
	switch i % 4 {
	case 0:
		return audit.AgentSpawn(aid, "/usr/bin/python3", map[string]string{"name": "reviewer-" + strconv.Itoa(i), "class": "reviewer"})
	case 1:
		return audit.InferenceCall(aid, "qwen2.5-7b", true, 0, map[string]string{"endpoint": "chat/completions", "tokens_in": "120", "tokens_out": "42"})
	case 2:
		return audit.CapPresent(aid, "x.acme.deploy", "prod", 0, 4000+i)
	}
	return audit.CapDeny(aid, "fs.read", "/home/maya/.ssh/id_ed25519", 134, 4000+i, uint64(i), nil)
}

// OpenChain opens (or creates) the chain under dir/chain.
func OpenChain(t testing.TB, dir string) *audit.Chain {
	t.Helper()
	c, err := audit.Open(filepath.Join(dir, "chain"), audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// AppendRows appends Row(from) … Row(from+n-1) to c.
func AppendRows(t testing.TB, c *audit.Chain, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		if _, err := c.Append(context.Background(), Row(i)); err != nil {
			t.Fatal(err)
		}
	}
}
