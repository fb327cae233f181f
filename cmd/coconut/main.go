// Command coconut is Coconut's command-line interface; see internal/cli.
package main

import (
	"os"

	"github.com/coconut-os/coconut/internal/cli"
)

func main() { os.Exit(cli.Run(os.Args[1:])) }
