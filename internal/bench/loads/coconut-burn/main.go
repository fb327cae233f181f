// Command coconut-burn is the load `coconut bench quota` runs as real
// agents: CPU spinners, a fixed unit of work whose latency is measured, and
// a memory flooder.
//
//	coconut-burn spin [--threads N]                      busy-loop N threads until killed
//	coconut-burn calibrate [--work 2ms]                  print the iterations one unit of that much CPU takes
//	coconut-burn unit --iters K [--sleep 20ms] [--count N]
//	                                                     do K iterations, sleep, N times; print each unit's wall time (µs) as JSON
//	coconut-burn mem [--step 64M] [--max 0]              allocate and touch memory step by step, rewriting it, until killed
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

var sink atomic.Uint64

// work runs n iterations of an xorshift that the compiler cannot drop.
func work(n int) {
	x := uint64(88172645463325252)
	for i := 0; i < n; i++ {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
	}
	sink.Add(x)
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	threads := fs.Int("threads", 1, "busy threads")
	workD := fs.Duration("work", 2*time.Millisecond, "CPU time of one unit (calibrate)")
	iters := fs.Int("iters", 0, "iterations per unit")
	sleep := fs.Duration("sleep", 20*time.Millisecond, "sleep between units")
	count := fs.Int("count", 200, "units")
	step := fs.String("step", "64M", "memory step")
	maxMem := fs.String("max", "0", "stop growing at this size (0: never)")
	fs.Parse(os.Args[2:])
	switch os.Args[1] {
	case "spin":
		if *threads < 1 || *threads > 1024 {
			fail("--threads must be 1..1024")
		}
		runtime.GOMAXPROCS(*threads)
		for i := 0; i < *threads; i++ {
			go func() {
				runtime.LockOSThread()
				for {
					work(1 << 20)
				}
			}()
		}
		select {}
	case "calibrate":
		fmt.Println(calibrate(*workD))
	case "unit":
		if *iters < 1 || *count < 1 {
			fail("--iters and --count must be positive")
		}
		lat := make([]int64, 0, *count)
		for i := 0; i < *count; i++ {
			t0 := time.Now()
			work(*iters)
			lat = append(lat, time.Since(t0).Microseconds())
			time.Sleep(*sleep)
		}
		json.NewEncoder(os.Stdout).Encode(map[string]any{"lat_us": lat})
	case "mem":
		st, err1 := size(*step)
		mx, err2 := size(*maxMem)
		if err1 != nil || err2 != nil || st <= 0 {
			fail("--step and --max take sizes such as 64M")
		}
		var held [][]byte
		total := int64(0)
		for {
			if mx == 0 || total+st <= mx {
				held = append(held, make([]byte, st))
				total += st
			}
			for _, b := range held {
				for i := 0; i < len(b); i += 4096 {
					b[i]++
				}
			}
		}
	default:
		usage()
	}
}

// calibrate finds the iterations that take d of CPU on an idle machine:
// the fastest of several tries, so a preemption does not inflate it.
func calibrate(d time.Duration) int {
	n := 1 << 16
	for {
		t0 := time.Now()
		work(n)
		if time.Since(t0) > 20*time.Millisecond {
			break
		}
		n *= 2
	}
	best := time.Duration(math.MaxInt64)
	for range 7 {
		t0 := time.Now()
		work(n)
		best = min(best, time.Since(t0))
	}
	return int(float64(n) * float64(d) / float64(best))
}

func size(s string) (int64, error) {
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "G"):
		mult, s = 1<<30, strings.TrimSuffix(s, "G")
	case strings.HasSuffix(s, "M"):
		mult, s = 1<<20, strings.TrimSuffix(s, "M")
	case strings.HasSuffix(s, "K"):
		mult, s = 1<<10, strings.TrimSuffix(s, "K")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n * mult, err
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "coconut-burn:", msg)
	os.Exit(2)
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: coconut-burn spin|calibrate|unit|mem [flags] (see the package comment)")
	os.Exit(2)
}
