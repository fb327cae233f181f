// Command coconut-enforce-probe is the load `coconut bench enforce` runs,
// as a plain process and as an agent, so that both sides of every ratio
// run the same instructions. It prints one JSON object per result line on
// stdout (an agent's stdout is its log, which the bench reads back).
//
//	coconut-enforce-probe open --path P --iters N          open()+close() of P, ns/op
//	coconut-enforce-probe connect --addr A --iters N       TCP connect()+close() to A, ns/op
//	coconut-enforce-probe loop --path P --iters N [--ready K] [--after-deny M]
//	        open()+close() of P in a loop, each op's CLOCK_MONOTONIC start,
//	        duration and errno kept in memory and printed at the end; after K
//	        ops it prints {"ready":true}; it stops M ops after the first deny
//	coconut-enforce-probe deny-connect --addr A --count N  N connects expected to be refused; errno counts
//	coconut-enforce-probe deny-open --path P --count N [--rate R]
//	        N opens expected to be refused; errno counts; with R > 0 paced at
//	        R opens a second (the Center's bench: a steady flow of deny rows)
//	coconut-enforce-probe flood-open --path P --count N    N opens expected to be allowed; errno counts
//	coconut-enforce-probe fork --path P --count N          N fork+exec+wait of program P; errno counts
//	coconut-enforce-probe api|infer --count N [--conns C] [--socket S]
//	        N API calls (GET /v1/agents on COCONUT_SOCKET) or tiny chat
//	        completions (on COCONUT_BROKER_SOCKET) from C connections at once
//	coconut-enforce-probe api-loop|infer-loop --iters N [--socket S]
//	        N sequential requests, each one's duration and status kept (errno:
//	        the HTTP status when not 2xx), as loop prints them
//	coconut-enforce-probe idle                             sleep until killed
//
// The calls are raw system calls (no os.File, no net.Conn): the figure is
// the kernel's and the enforcer's cost, not Go's.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// result is the line the bench parses (internal/bench/enforce_probe.go
// has the reader; keep the field names in step).
type result struct {
	Op      string         `json:"op"`
	Iters   int            `json:"iters"`
	NsPerOp float64        `json:"ns_per_op,omitempty"`
	Errnos  map[string]int `json:"errnos"` // errno number → ops; "0" = succeeded
	// loop only: op i started at MonoBase + sum(Start[:i+1]) and took Dur[i].
	MonoBase int64   `json:"mono_base_ns,omitempty"`
	Start    []int64 `json:"start_ns,omitempty"`
	Dur      []int64 `json:"dur_ns,omitempty"`
	Errno    []int   `json:"errno,omitempty"`
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	path := fs.String("path", "", "file to open")
	addr := fs.String("addr", "", "IPv4 address:port to connect to")
	iters := fs.Int("iters", 20000, "operations measured")
	count := fs.Int("count", 100000, "operations (deny-*)")
	ready := fs.Int("ready", 2000, "loop: print {\"ready\":true} after this many ops")
	afterDeny := fs.Int("after-deny", 2000, "loop: stop this many ops after the first deny")
	rate := fs.Float64("rate", 0, "deny-open: opens per second (0: as fast as it goes)")
	conns := fs.Int("conns", 8, "api, infer: requests at once")
	socket := fs.String("socket", "", "api, infer: the Unix socket (default COCONUT_SOCKET, COCONUT_BROKER_SOCKET)")
	fs.Parse(os.Args[2:])
	// One thread does the work: the figures are per operation, and an
	// agent's supervisor then serves one caller, as a plain process's
	// kernel does.
	runtime.LockOSThread()
	var r result
	var err error
	switch os.Args[1] {
	case "open":
		r, err = timed("open", *iters, func() unix.Errno { return openClose(*path) }, *path != "")
	case "connect":
		sa, perr := sockaddr(*addr)
		if perr != nil {
			fail(perr.Error())
		}
		r, err = timed("connect", *iters, func() unix.Errno { return connectClose(sa) }, true)
	case "loop":
		if *path == "" || *iters < 1 {
			fail("loop: --path and --iters ≥ 1 needed")
		}
		r = loop(*path, *iters, *ready, *afterDeny)
	case "deny-connect":
		sa, perr := sockaddr(*addr)
		if perr != nil {
			fail(perr.Error())
		}
		r = counted("deny-connect", *count, func() unix.Errno { return connectClose(sa) })
	case "deny-open":
		if *path == "" {
			fail("deny-open: --path needed")
		}
		r = counted("deny-open", *count, paced(*rate, func() unix.Errno { return openClose(*path) }))
	case "flood-open":
		if *path == "" {
			fail("flood-open: --path needed")
		}
		r = counted("flood-open", *count, func() unix.Errno { return openClose(*path) })
	case "fork":
		if *path == "" {
			fail("fork: --path needed")
		}
		r = counted("fork", *count, func() unix.Errno { return forkExec(*path) })
	case "api", "infer":
		op, rerr := requester(os.Args[1], *socket, *conns)
		if rerr != nil {
			fail(rerr.Error())
		}
		r = parallel(os.Args[1], *count, *conns, op)
	case "api-loop", "infer-loop":
		op, rerr := requester(os.Args[1][:len(os.Args[1])-len("-loop")], *socket, 1)
		if rerr != nil {
			fail(rerr.Error())
		}
		r = timedLoop(os.Args[1], *iters, op)
	case "idle":
		for {
			time.Sleep(time.Hour)
		}
	default:
		usage()
	}
	if err != nil {
		fail(err.Error())
	}
	b, _ := json.Marshal(r)
	os.Stdout.Write(append(b, '\n'))
}

func usage() {
	fail("usage: coconut-enforce-probe open|connect|loop|deny-connect|deny-open|flood-open|fork|api|infer|api-loop|infer-loop|idle [flags]")
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "coconut-enforce-probe:", msg)
	os.Exit(2)
}

func openClose(path string) unix.Errno {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return errnoOf(err)
	}
	unix.Close(fd)
	return 0
}

// connectClose connects a TCP socket and closes it with SO_LINGER 0 (a
// reset): tens of thousands of connects must not leave as many sockets in
// TIME_WAIT, which would exhaust the ephemeral ports.
func connectClose(sa *unix.SockaddrInet4) unix.Errno {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return errnoOf(err)
	}
	defer unix.Close(fd)
	if err := unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0}); err != nil {
		return errnoOf(err)
	}
	if err := unix.Connect(fd, sa); err != nil {
		return errnoOf(err)
	}
	return 0
}

func errnoOf(err error) unix.Errno {
	if e, ok := err.(unix.Errno); ok {
		return e
	}
	return unix.EIO
}

func sockaddr(s string) (*unix.SockaddrInet4, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil || !ap.Addr().Is4() {
		return nil, fmt.Errorf("--addr %q: want IPv4 address:port", s)
	}
	return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}, nil
}

// timed runs op iters/10 times to warm caches, then iters times against the
// clock; every op must succeed (the file or port is allowed).
func timed(name string, iters int, op func() unix.Errno, ok bool) (result, error) {
	if !ok || iters < 1 {
		return result{}, fmt.Errorf("%s: a target and --iters ≥ 1 needed", name)
	}
	for i := 0; i < iters/10; i++ {
		if e := op(); e != 0 {
			return result{}, fmt.Errorf("%s: warm-up op %d: errno %d (%v)", name, i, int(e), e)
		}
	}
	t0 := time.Now()
	for i := 0; i < iters; i++ {
		if e := op(); e != 0 {
			return result{}, fmt.Errorf("%s: op %d: errno %d (%v)", name, i, int(e), e)
		}
	}
	el := time.Since(t0)
	return result{Op: name, Iters: iters, NsPerOp: float64(el.Nanoseconds()) / float64(iters), Errnos: map[string]int{"0": iters}}, nil
}

func counted(name string, n int, op func() unix.Errno) result {
	r := result{Op: name, Iters: n, Errnos: map[string]int{}}
	t0 := time.Now()
	for i := 0; i < n; i++ {
		r.Errnos[strconv.Itoa(int(op()))]++
	}
	if n > 0 {
		r.NsPerOp = float64(time.Since(t0).Nanoseconds()) / float64(n)
	}
	return r
}

// paced wraps op so that calls start at most rate a second, on a fixed
// schedule (a late call does not shift the ones after it).
func paced(rate float64, op func() unix.Errno) func() unix.Errno {
	if rate <= 0 {
		return op
	}
	every := time.Duration(float64(time.Second) / rate)
	next := time.Now()
	return func() unix.Errno {
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		}
		next = next.Add(every)
		return op()
	}
}

func mono() int64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

// loop records every op so the bench can place each one against the
// moment its revoke call returned (both read CLOCK_MONOTONIC).
func loop(path string, iters, ready, afterDeny int) result {
	starts := make([]int64, 0, iters)
	durs := make([]int64, 0, iters)
	errs := make([]int, 0, iters)
	stopAt := iters
	for i := 0; i < stopAt; i++ {
		t := mono()
		e := openClose(path)
		d := mono() - t
		starts, durs, errs = append(starts, t), append(durs, d), append(errs, int(e))
		if i+1 == ready {
			os.Stdout.WriteString("{\"ready\":true}\n")
		}
		if e != 0 && stopAt == iters && i+1+afterDeny < iters {
			stopAt = i + 1 + afterDeny
		}
	}
	r := result{Op: "loop", Iters: len(starts), Errnos: map[string]int{}, Dur: durs, Errno: errs}
	if len(starts) > 0 {
		r.MonoBase = starts[0]
		r.Start = make([]int64, len(starts))
		prev := starts[0]
		for i, s := range starts {
			r.Start[i] = s - prev
			prev = s
		}
	}
	for _, e := range errs {
		r.Errnos[strconv.Itoa(e)]++
	}
	return r
}
