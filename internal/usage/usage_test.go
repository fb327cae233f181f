package usage

import (
	"errors"
	"fmt"
	"testing"

	"github.com/spf13/cobra"
)

func TestUsageErrorsAreToldApart(t *testing.T) {
	u := Errorf("--runs must be 1..%d", 1000)
	if !Is(u) || !Is(fmt.Errorf("bench: %w", u)) || u.Error() != "--runs must be 1..1000" {
		t.Errorf("usage error %q not recognised through wrapping", u)
	}
	if Is(errors.New("refused")) {
		t.Error("a plain error is taken for bad usage")
	}
	cmd := &cobra.Command{Use: "x"}
	if err := ExactArgs(1)(cmd, nil); !Is(err) {
		t.Errorf("ExactArgs(1) with none: %v, want a usage error", err)
	}
	if err := ExactArgs(1)(cmd, []string{"a"}); err != nil {
		t.Errorf("ExactArgs(1) with one: %v", err)
	}
	if err := MinArgs(2)(cmd, []string{"a"}); !Is(err) {
		t.Errorf("MinArgs(2) with one: %v, want a usage error", err)
	}
}
