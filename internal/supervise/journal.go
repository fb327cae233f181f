package supervise

import (
	"os"

	"golang.org/x/sys/unix"
)

// AnswerRecorded answers notification id on listener with errno (0:
// continue the call) if it is still pending, and reports whether it was.
//
// It closes the window a daemon killed between a row and its answer
// leaves (issue 20): the call waits on, received by no one, and the next
// daemon used to make it restart (freeze and thaw) into a second
// notification and a second row for one call. With the row's
// notification id the next daemon gives the recorded answer instead; a
// notification without a row is still restarted, and recorded once.
// Notification ids are unique per filter and the kernel checks this one
// is pending (received, not answered) on this listener.
func AnswerRecorded(listener *os.File, id uint64, errno unix.Errno) bool {
	fd := int(listener.Fd())
	return idValid(fd, id) && send(fd, id, errno) == nil
}

// Continuable reports whether a recorded allowed call named syscall (the
// row's Detail["syscall"]) may be answered CONTINUE from its row. Calls
// the supervisor performs itself may not: their decision was made on an
// object held only by the dead daemon, and a CONTINUE would hand the
// kernel a path the agent may have rewritten since (the raced attribute
// change of issue 11). Such a call is restarted and decided again.
func Continuable(syscall string) bool {
	for nr, name := range syscallNames {
		if name == syscall && emulatedCalls[nr] {
			return false
		}
	}
	return syscall != ""
}
