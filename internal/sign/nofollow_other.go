//go:build !linux

package sign

// nofollow is unavailable here; the Lstat check still applies.
const nofollow = 0
