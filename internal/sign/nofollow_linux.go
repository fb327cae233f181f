package sign

import "syscall"

// nofollow makes opening a trust entry fail if it was swapped for a
// symlink between the Lstat check and the open.
const nofollow = syscall.O_NOFOLLOW
