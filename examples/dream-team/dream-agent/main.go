package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	os.Exit(realMain(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// realMain is main with its inputs and outputs passed in, returning the exit
// status: 0 when the work ends (by duration or signal), 2 on bad usage.
func realMain(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cfg, err := parseConfig(args, getenv)
	if err != nil {
		fmt.Fprintf(stderr, "dream-agent: %v\n", err)
		if errors.Is(err, errUsage) {
			fmt.Fprintln(stderr, "usage: dream-agent --role planner|researcher|coder|reviewer [--project DIR] [--notes DIR] [--duration D] [--interval D] [--infer-every N] [--probe-ssh]")
			return 2
		}
		return 1
	}

	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	go func() {
		select {
		case sig := <-sigs:
			cancel(signalCause(sig))
		case <-ctx.Done():
		}
	}()

	l := log.New(stdout, fmt.Sprintf("%s[%s] ", cfg.Role, cfg.tag()), log.LstdFlags|log.Lmsgprefix)
	run(ctx, cfg, l)
	return 0
}
