package cli

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/coconut-os/coconut/internal/statedir"
	"github.com/coconut-os/coconut/internal/tiles"
)

// auditTiles publishes the latest (or a chosen) signed checkpoint and its
// Merkle tree as a C2SP tlog-tiles directory. It is a command, not a daemon
// job: publishing is the user's choice of when and where, it costs the
// daemon nothing on the append path, and it reads the segments without
// locking the chain, so it works with coconutd running or stopped.
func auditTiles(g *globals) *cobra.Command {
	var to, pubFile string
	var size uint64
	cmd := &cobra.Command{
		Use: "tiles [--to DIR] [--size N] [--pub FILE]", Short: "Write the signed checkpoint and Merkle tree as a C2SP tlog-tiles directory any web server can serve", Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			pub, err := hostPublicKey(g, pubFile)
			if err != nil {
				return err
			}
			if to == "" {
				to = filepath.Join(g.state(), tiles.DirName)
			}
			p, err := tiles.FromChain(statedir.Chain(g.state()), pub, to, size)
			if err != nil {
				return err
			}
			if g.json {
				printJSON(os.Stdout, map[string]any{"ok": true, "dir": to, "tree_size": p.Size, "origin": p.Origin})
				return nil
			}
			fmt.Printf("wrote tiles of checkpoint %s size %d to %s\n", p.Origin, p.Size, to)
			return nil
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "the directory to write (default STATE/"+tiles.DirName+", which the Center serves at /tiles/)")
	cmd.Flags().Uint64Var(&size, "size", 0, "publish the stored checkpoint of this tree size (default: the latest)")
	cmd.Flags().StringVar(&pubFile, "pub", "", "the host public key (default STATE/keys/host.pub)")
	return cmd
}
