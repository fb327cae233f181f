// Package setup is `coconut init`: the five questions (answers.go), the
// commented configuration file they become (render.go), the check of an
// inference backend (backend.go), the keys, trust and anchor in the
// state directory (state.go), the workstation user's key, signed
// manifest and project directories in their home (home.go), and starting
// coconutd (daemon.go). Run (run.go) does each step once: a second run
// with the same answers changes nothing, and with other answers says
// what it would change unless told to apply it.
package setup
