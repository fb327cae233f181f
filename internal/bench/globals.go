package bench

import (
	"encoding/json"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/coconut-os/coconut/client"
)

// globals are the root command's flags a benchmark reads.
type globals struct {
	socket *string
	asJSON *bool
}

func (g *globals) client() *client.Client { return client.New(*g.socket) }
func (g *globals) json() bool             { return *g.asJSON }

// printJSON, table and oneLine print as internal/cli does (docs/cli.md).
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func table(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0) }

func oneLine(err error) string {
	return strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n", "; ")
}
