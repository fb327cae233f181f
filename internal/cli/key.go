package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/coconut-os/coconut/internal/sign"
)

func keyCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "key", Short: "Manage publisher keys"}
	var out string
	gen := &cobra.Command{
		Use:   "gen --out PREFIX",
		Short: "Generate an ed25519 key pair: PREFIX.key (0600) and PREFIX.pub",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return usagef("key gen: --out PREFIX is required")
			}
			pub, err := sign.GenerateKey(out)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(os.Stdout, map[string]string{"keyid": sign.KeyID(pub), "private": out + ".key", "public": out + ".pub"})
			}
			fmt.Printf("%s\n", sign.KeyID(pub))
			fmt.Fprintf(os.Stderr, "wrote %s.key (keep it secret) and %s.pub (give it to: coconut trust add %s.pub)\n", out, out, out)
			return nil
		},
	}
	gen.Flags().StringVar(&out, "out", "", "path prefix of the key files")
	cmd.AddCommand(gen)
	return cmd
}

func trustCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "trust", Short: "Manage the daemon's trusted publisher keys"}
	var comment string
	add := &cobra.Command{
		Use:   "add PREFIX.pub",
		Short: "Trust a publisher key (root: for every user; a user: for their own spawns)",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			if _, err := sign.ParsePublicKey(b); err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			e, err := g.client().TrustAdd(cmd.Context(), b, comment)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(os.Stdout, e)
			}
			scope := "every user"
			if e.AddedBy != 0 {
				scope = fmt.Sprintf("spawns by uid %d", e.AddedBy)
			}
			fmt.Printf("trusted %s for %s\n", e.KeyID, scope)
			return nil
		},
	}
	add.Flags().StringVar(&comment, "comment", "", "a note stored with the key")
	ls := &cobra.Command{
		Use: "ls", Short: "List trusted keys", Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			es, err := g.client().Trust(cmd.Context())
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(os.Stdout, es)
			}
			tw := table(os.Stdout)
			fmt.Fprintln(tw, "KEYID\tADDED BY\tADDED AT\tCOMMENT")
			for _, e := range es {
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", e.KeyID, e.AddedBy, e.AddedAt.Format("2006-01-02 15:04"), e.Comment)
			}
			return tw.Flush()
		},
	}
	cmd.AddCommand(add, ls)
	return cmd
}
