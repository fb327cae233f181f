// Command coconut-tail is `coconut audit tail -f`: a live view of the audit
// chain, one readable line per event (JSON lines with --json).
package main

import (
	"os"

	"github.com/coconut-os/coconut/internal/tail"
)

func main() { os.Exit(tail.Main(os.Args[1:])) }
