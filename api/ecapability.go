package api

import "syscall"

// ECapability is the errno of a capability denial. 134 is the first number
// above the highest errno Linux defines (EHWPOISON = 133), so no existing
// error path of the kernel or libc can produce it by accident, and an agent
// or a human can tell "the capability model said no" from EACCES/EPERM
// ("file mode bits said no"). It has no name in any libc: C strerror prints
// "Unknown error 134", Go prints "errno 134", Python raises
// OSError(134, 'Unknown error 134'). Compare the number, not a name.
//
// libcoconut (package client) exports it as client.ECAPABILITY.
const ECapability = syscall.Errno(134)
