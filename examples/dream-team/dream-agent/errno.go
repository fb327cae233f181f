package main

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/coconut-os/coconut/api"
)

// errnoOf finds the errno under err, however deeply wrapped (os.PathError,
// net.OpError, url.Error…). ok is false when there is none.
func errnoOf(err error) (syscall.Errno, bool) {
	var e syscall.Errno
	if errors.As(err, &e) {
		return e, true
	}
	return 0, false
}

// describe renders err for the log with its errno NUMBER, which is what
// matters: a capability denial is errno 134 and has no name, so Go prints it
// as "errno 134" and only the number tells it apart from EACCES.
func describe(err error) string {
	e, ok := errnoOf(err)
	switch {
	case !ok:
		return fmt.Sprintf("%v (no errno)", err)
	case e == api.ECapability:
		return fmt.Sprintf("%v (errno %d, ECAPABILITY)", err, int(e))
	default:
		return fmt.Sprintf("%v (errno %d)", err, int(e))
	}
}

// isDenial reports whether e means "not allowed" rather than "went wrong".
func isDenial(e syscall.Errno) bool {
	return e == api.ECapability || e == syscall.EACCES || e == syscall.EPERM
}
