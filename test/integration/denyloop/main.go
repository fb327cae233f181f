// Command denyloop is the stress tests' agent (test/integration,
// TestKillRestartCountersAgree): it makes, in a loop, one call of each kind
// Coconut denies and logs every answer to a ledger, so a test can check that
// every deny it saw has exactly one audit row and no row has no deny behind
// it. Kinds: an open of a file outside the bundle (the seccomp supervisor),
// an open of an allowed file (must succeed), a TCP connect to a port outside
// the bundle and a connect to a Unix socket outside it (the network guard,
// in the kernel), and mount(2) (refused whatever the bundle).
//
// Each ledger line is "KIND ERRNO UNIXNANO", written with one write(2) to a
// file opened once with O_APPEND, so a line is whole or absent. ERRNO 0 is a
// success. On SIGTERM it finishes the current call, logs it, and exits 0:
// an agent killed between a call and its ledger line would leave a row with
// no line behind it.
//
// Usage: denyloop LEDGER DENIED_FILE ALLOWED_FILE TCP_PORT UNIX_PATH INTERVAL
package main

import (
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) != 7 {
		fmt.Fprintln(os.Stderr, "usage: denyloop LEDGER DENIED_FILE ALLOWED_FILE TCP_PORT UNIX_PATH INTERVAL")
		os.Exit(2)
	}
	ledger, denied, allowed, unixPath := os.Args[1], os.Args[2], os.Args[3], os.Args[5]
	port, err := strconv.Atoi(os.Args[4])
	if err != nil {
		fmt.Fprintln(os.Stderr, "denyloop: bad port:", err)
		os.Exit(2)
	}
	every, err := time.ParseDuration(os.Args[6])
	if err != nil {
		fmt.Fprintln(os.Stderr, "denyloop: bad interval:", err)
		os.Exit(2)
	}
	fd, err := unix.Open(ledger, unix.O_WRONLY|unix.O_CREAT|unix.O_APPEND|unix.O_CLOEXEC, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, "denyloop: open ledger:", err)
		os.Exit(1)
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	note := func(kind string, err error) {
		e := 0
		if err != nil {
			e = int(err.(syscall.Errno))
		}
		line := fmt.Sprintf("%s %d %d\n", kind, e, time.Now().UnixNano())
		if _, werr := unix.Write(fd, []byte(line)); werr != nil {
			fmt.Fprintln(os.Stderr, "denyloop: ledger:", werr)
			os.Exit(1)
		}
	}
	calls := []struct {
		kind string
		call func() error
	}{
		{"open-denied", func() error { return openClose(denied) }},
		{"open-allowed", func() error { return openClose(allowed) }},
		{"connect-tcp", func() error {
			return connectClose(unix.AF_INET, &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}})
		}},
		{"connect-unix", func() error { return connectClose(unix.AF_UNIX, &unix.SockaddrUnix{Name: unixPath}) }},
		{"mount", func() error { return unix.Mount("none", "/tmp", "tmpfs", 0, "") }},
	}
	fmt.Println("denyloop: running")
	for {
		for _, c := range calls {
			note(c.kind, c.call())
			select {
			case <-stop:
				unix.Close(fd)
				fmt.Println("denyloop: stopped")
				os.Exit(0)
			default:
			}
		}
		time.Sleep(every)
	}
}

func openClose(path string) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	return unix.Close(fd)
}

func connectClose(family int, sa unix.Sockaddr) error {
	s, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(s)
	return unix.Connect(s, sa)
}
