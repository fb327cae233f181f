package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The floods and the victim loop `coconut bench noisy` adds to the ones
// above (issue 19.3): each flood runs until killed (or --count ops), the
// loop times each of its requests.

// forkExec starts path with no arguments and waits for it: one fork, one
// exec (a supervised one), one exit. Failure to start is its errno.
func forkExec(path string) unix.Errno {
	pid, err := syscall.ForkExec(path, []string{path}, &syscall.ProcAttr{Env: []string{}})
	if err != nil {
		return errnoOf(err)
	}
	var ws syscall.WaitStatus
	for {
		_, err := syscall.Wait4(pid, &ws, 0, nil)
		if err != syscall.EINTR {
			break
		}
	}
	return 0
}

// unixHTTP is an HTTP client over a Unix socket (the daemon's API, the
// broker's socket); conns keep-alive connections at most.
func unixHTTP(socket string, conns int) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", socket)
		},
		MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns,
	}, Timeout: time.Minute}
}

// call makes one request and reads the answer to its end; 0 when the
// status is 2xx, else the status itself (429, 503: the bench counts and
// names them).
func call(c *http.Client, method, url string, body []byte) unix.Errno {
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		return unix.EINVAL
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key := os.Getenv("OPENAI_API_KEY"); key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := c.Do(req)
	if err != nil {
		return errnoOf(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return unix.Errno(resp.StatusCode)
	}
	return 0
}

// inferBody is one tiny chat completion: a few prompt tokens, one out.
var inferBody = []byte(`{"model":"coconut-sim","max_tokens":1,"messages":[{"role":"user","content":"hi"}]}`)

// requester returns the op of an api or infer flood or loop.
func requester(kind, socket string, conns int) (func() unix.Errno, error) {
	switch kind {
	case "api":
		if socket == "" {
			socket = os.Getenv("COCONUT_SOCKET")
		}
		c := unixHTTP(socket, conns)
		return func() unix.Errno { return call(c, "GET", "http://coconut/v1/agents", nil) }, nil
	case "infer":
		if socket == "" {
			socket = os.Getenv("COCONUT_BROKER_SOCKET")
		}
		c := unixHTTP(socket, conns)
		return func() unix.Errno { return call(c, "POST", "http://coconut-broker/v1/chat/completions", inferBody) }, nil
	}
	return nil, fmt.Errorf("unknown request kind %q", kind)
}

// parallel runs op from conns goroutines until count ops in all, and
// counts the errnos.
func parallel(name string, count, conns int, op func() unix.Errno) result {
	r := result{Op: name, Iters: count, Errnos: map[string]int{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	left := count
	t0 := time.Now()
	for range max(conns, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				if left == 0 {
					mu.Unlock()
					return
				}
				left--
				mu.Unlock()
				e := op()
				mu.Lock()
				r.Errnos[strconv.Itoa(int(e))]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	r.NsPerOp = float64(time.Since(t0).Nanoseconds()) / float64(max(count, 1))
	return r
}

// timedLoop times iters sequential ops (the loop result's Dur and Errno).
func timedLoop(name string, iters int, op func() unix.Errno) result {
	r := result{Op: name, Iters: iters, Errnos: map[string]int{}, Start: []int64{}}
	prev := int64(0)
	for i := range iters {
		t := mono()
		e := op()
		if i == 0 {
			r.MonoBase, prev = t, t
		}
		r.Start, prev = append(r.Start, t-prev), t
		r.Dur, r.Errno = append(r.Dur, mono()-t), append(r.Errno, int(e))
		r.Errnos[strconv.Itoa(int(e))]++
	}
	return r
}
