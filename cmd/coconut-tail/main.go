// Command coconut-tail is `coconut audit tail -f`: a live view of the audit
// chain, one readable line per event (JSON lines with --json).
package main

import (
	"os"

	"github.com/coconut-os/coconut/internal/cli"
)

func main() {
	os.Exit(cli.Run(append([]string{"audit", "tail", "-f"}, os.Args[1:]...)))
}
