package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"
)

func TestDescribe(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{
			name: "capability denial",
			err:  &fs.PathError{Op: "open", Path: "/x", Err: syscall.Errno(134)},
			want: "open /x: errno 134 (errno 134, ECAPABILITY)",
		},
		{
			name: "not found",
			err:  &fs.PathError{Op: "open", Path: "/x", Err: syscall.ENOENT},
			want: "open /x: no such file or directory (errno 2)",
		},
		{
			name: "deeply wrapped connect denial",
			err: &url.Error{Op: "Post", URL: "http://b/v1", Err: &net.OpError{
				Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.Errno(134)),
			}},
			want: "(errno 134, ECAPABILITY)",
		},
		{
			name: "no errno",
			err:  errors.New("boom"),
			want: "boom (no errno)",
		},
		{
			name: "wrapped with fmt",
			err:  fmt.Errorf("read: %w", syscall.EACCES),
			want: "read: permission denied (errno 13)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := describe(tt.err); !strings.HasSuffix(got, tt.want) {
				t.Errorf("describe = %q, want suffix %q", got, tt.want)
			}
		})
	}
}

func TestIsDenial(t *testing.T) {
	for _, tt := range []struct {
		errno syscall.Errno
		want  bool
	}{{134, true}, {syscall.EACCES, true}, {syscall.EPERM, true}, {syscall.ENOENT, false}, {syscall.EISDIR, false}} {
		t.Run(fmt.Sprint(int(tt.errno)), func(t *testing.T) {
			if got := isDenial(tt.errno); got != tt.want {
				t.Errorf("isDenial(%d) = %v", int(tt.errno), got)
			}
		})
	}
}
