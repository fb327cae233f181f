// Package usage marks command-line errors that are bad usage (exit status
// 2, docs/cli.md) rather than a refusal or a failure (exit status 1). It is
// a leaf shared by internal/cli and the commands it mounts from other
// packages (internal/bench), so that one errors.As in cli.Run tells them
// apart wherever the command lives.
package usage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

// Error is bad usage.
type Error struct{ Err error }

func (e Error) Error() string { return e.Err.Error() }
func (e Error) Unwrap() error { return e.Err }

// Errorf is fmt.Errorf marked as bad usage.
func Errorf(format string, args ...any) error { return Error{fmt.Errorf(format, args...)} }

// Is reports whether err is bad usage.
func Is(err error) bool {
	var ue Error
	return errors.As(err, &ue)
}

// ExactArgs is cobra.ExactArgs with exit status 2.
func ExactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return Errorf("%s: want %d argument(s), got %d (see --help)", cmd.CommandPath(), n, len(args))
		}
		return nil
	}
}

// MinArgs is cobra.MinimumNArgs with exit status 2.
func MinArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < n {
			return Errorf("%s: want at least %d argument(s), got %d (see --help)", cmd.CommandPath(), n, len(args))
		}
		return nil
	}
}

// Execute runs root with args under a context that SIGINT and SIGTERM
// cancel, prints a failure as one line "coconut: ..." on stderr, and
// returns the exit status: 0, 1 refused or failed, 2 bad usage.
func Execute(root *cobra.Command, args []string) int {
	root.SetArgs(args)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	fmt.Fprintln(os.Stderr, "coconut:", strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n", "; "))
	if Is(err) {
		return 2
	}
	return 1
}
