package cli

import "github.com/spf13/cobra"

// Command returns the coconut command tree, for generating man pages and
// shell completions (packaging/gendocs); running it is Run's job.
func Command() *cobra.Command { return newRoot(&globals{}) }
