package main

import "errors"

var (
	// errUsage marks a command-line mistake; main exits 2 on it.
	errUsage = errors.New("usage")
	// errBadResponse is an inference reply that is not a chat completion.
	errBadResponse = errors.New("bad completion response")
)
