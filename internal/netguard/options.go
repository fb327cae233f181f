package netguard

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
)

// Options change how a guard loads. The zero value is Load's behaviour:
// all nine programs or nothing.
type Options struct {
	// AllowNoUnixHooks loads and attaches the seven inet programs when the
	// kernel refuses the Unix socket ones (ErrUnixHooks: Linux before
	// 6.7). Unix connects and sends are then unchecked by the guard: the
	// caller must check them some other way (the seccomp supervisor does,
	// in enforce) before it runs an agent. UnixHooks says which it got.
	AllowNoUnixHooks bool
	// NoUnixHooks leaves the Unix socket programs out even where the
	// kernel has them: a test and diagnostic switch that makes a new
	// kernel behave as an old one (coconutd: COCONUT_UNIX_HOOKS=off).
	NoUnixHooks bool
}

// UnixHooks reports whether the Unix socket programs (connect_unix,
// sendmsg_unix) are attached. False only for a guard loaded with Options
// that allow it: its Unix connects are not checked here.
func (g *Guard) UnixHooks() bool { return !g.noUnix }

// loadFallback runs load with the Unix programs, unless o leaves them
// out, and once more without them when the kernel refuses them and o
// allows it. Any other error is returned as is: the fallback is for the
// missing hooks only.
func loadFallback(o Options, load func(noUnix bool) (*Guard, error)) (*Guard, error) {
	if o.NoUnixHooks {
		return load(true)
	}
	g, err := load(false)
	if err == nil || !o.AllowNoUnixHooks || !errors.Is(err, ErrUnixHooks) {
		return g, err
	}
	g, ferr := load(true)
	if ferr != nil {
		return nil, fmt.Errorf("%w (and without them: %w)", err, ferr)
	}
	return g, nil
}

// inetObjects is what a load without the Unix programs asks of the
// collection: every map and variable, the seven inet programs. Only what
// a struct names is loaded, so the kernel never sees the Unix programs.
type inetObjects struct {
	netguardMaps
	netguardVariables
	Bind4      *ebpf.Program `ebpf:"bind4"`
	Bind6      *ebpf.Program `ebpf:"bind6"`
	Connect4   *ebpf.Program `ebpf:"connect4"`
	Connect6   *ebpf.Program `ebpf:"connect6"`
	Sendmsg4   *ebpf.Program `ebpf:"sendmsg4"`
	Sendmsg6   *ebpf.Program `ebpf:"sendmsg6"`
	SockCreate *ebpf.Program `ebpf:"sock_create"`
	Bss        *ebpf.Map     `ebpf:".bss"`
}

// loadObjects loads the collection into g.objs: all of it, or without
// the Unix programs when g.noUnix (their fields stay nil).
func (g *Guard) loadObjects(spec *ebpf.CollectionSpec, opts *ebpf.CollectionOptions) error {
	if !g.noUnix {
		return spec.LoadAndAssign(&g.objs, opts)
	}
	var o inetObjects
	if err := spec.LoadAndAssign(&o, opts); err != nil {
		return err
	}
	g.objs.netguardMaps, g.objs.netguardVariables, g.objs.Bss = o.netguardMaps, o.netguardVariables, o.Bss
	p := &g.objs.netguardPrograms
	p.Bind4, p.Bind6, p.Connect4, p.Connect6 = o.Bind4, o.Bind6, o.Connect4, o.Connect6
	p.Sendmsg4, p.Sendmsg6, p.SockCreate = o.Sendmsg4, o.Sendmsg6, o.SockCreate
	return nil
}
