package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/coconut-os/coconut/internal/manifest"
	"github.com/coconut-os/coconut/internal/sign"
	"github.com/coconut-os/coconut/internal/statedir"
)

func manifestCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "manifest", Short: "Sign and verify workload manifests"}
	var key, pub string
	signC := &cobra.Command{
		Use:   "sign FILE --key PREFIX.key",
		Short: "Sign a manifest: writes FILE.sig (a DSSE envelope)",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if key == "" {
				return usagef("manifest sign: --key PREFIX.key is required")
			}
			data, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			// Sign only what the daemon would accept: a signature on a
			// broken manifest helps nobody.
			if _, err := manifest.Parse(filepath.Base(args[0]), data); err != nil {
				return err
			}
			priv, err := sign.LoadPrivateKey(key)
			if err != nil {
				return err
			}
			sig, err := sign.SignManifest(priv, args[0], data)
			if err != nil {
				return err
			}
			if err := os.WriteFile(args[0]+".sig", sig, 0o644); err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "wrote %s.sig\n", args[0])
			return nil
		},
	}
	signC.Flags().StringVar(&key, "key", "", "private key file")
	verify := &cobra.Command{
		Use:   "verify FILE [--pub PREFIX.pub]",
		Short: "Check a manifest and its FILE.sig offline (against --pub, else the trust store)",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			sig, err := os.ReadFile(args[0] + ".sig")
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
			var v sign.Verified
			if pub != "" {
				k, err := sign.LoadPublicKey(pub)
				if err != nil {
					return err
				}
				v, err = sign.VerifyManifestWithKey(data, sig, k)
			} else {
				trust, terr := sign.OpenTrust(statedir.Trust(g.state()))
				if terr != nil {
					return terr
				}
				v, err = sign.VerifyManifest(data, sig, trust, uint32(os.Getuid()))
			}
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			m, err := manifest.Parse(filepath.Base(args[0]), data)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(os.Stdout, map[string]any{"file": args[0], "keyid": v.KeyID, "sha256": v.Digest,
					"workload": m.Metadata.Name, "agents": len(m.Instances())})
			}
			fmt.Printf("%s: good signature by %s; workload %s, %d agents\n", args[0], v.KeyID, m.Metadata.Name, len(m.Instances()))
			return nil
		},
	}
	verify.Flags().StringVar(&pub, "pub", "", "public key to check against instead of the trust store")
	cmd.AddCommand(signC, verify)
	return cmd
}
