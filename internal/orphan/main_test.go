package orphan_test

import (
	"os"
	"testing"

	"github.com/coconut-os/coconut/internal/testutil/leakcheck"
)

// TestMain is in the external package: leakcheck imports orphan.
func TestMain(m *testing.M) { os.Exit(leakcheck.Main(m)) }
