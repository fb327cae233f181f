package anchor

import (
	"testing"

	"github.com/google/go-tpm/tpm2/transport"

	"github.com/coconut-os/coconut/internal/testutil/swtpm"
)

// startSWTPM starts a fresh swtpm (internal/testutil/swtpm) and returns
// its data socket path.
func startSWTPM(t testing.TB) string { return swtpm.Start(t) }

func dialSWTPM(t testing.TB, sock string) transport.TPMCloser {
	t.Helper()
	tpm, err := DialTPM(sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tpm.Close() })
	return tpm
}
