package policy

import (
	"fmt"
	"testing"
)

// TestConformance: Decide reaches every verdict of the table.
func TestConformance(t *testing.T) {
	cases := Conformance("/srv/conformance")
	names := map[string]bool{}
	kinds := map[string]int{}
	for _, c := range cases {
		if names[c.Name] {
			t.Fatalf("two cases named %q", c.Name)
		}
		names[c.Name] = true
		kinds[fmt.Sprintf("%T", c.Op)]++
		b, err := c.Bundle()
		if err != nil {
			t.Fatal(err)
		}
		if got := Decide(b, c.Op); got != c.Want() {
			t.Errorf("case %q: policy says %v, want %v", c.Name, got, c.Want())
		}
	}
	if len(cases) < 300 {
		t.Errorf("%d cases, want several hundred", len(cases))
	}
	t.Logf("%d cases: %v", len(cases), kinds)
}
