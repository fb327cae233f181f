package cli

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/coconut-os/coconut/api"
	"github.com/coconut-os/coconut/internal/attest"
	"github.com/coconut-os/coconut/internal/capability"
	"github.com/coconut-os/coconut/internal/manifest"
	"github.com/coconut-os/coconut/internal/policy"
	"github.com/coconut-os/coconut/internal/quota"
	"github.com/coconut-os/coconut/internal/sign"
	"github.com/coconut-os/coconut/internal/state"
	"github.com/coconut-os/coconut/internal/statedir"
)

func agentCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "agent", Short: "Spawn, list, inspect and end agents"}
	cmd.AddCommand(agentSpawn(g), agentPrune(g), agentRun(g), agentLs(g), agentInspect(g), agentLogs(g), agentAttest(g),
		agentCaps(g), agentKill(g), agentQuota(g),
		agentByAID(g, "quarantine", "Freeze an agent (Quarantined)", func(c *cobra.Command, aid uint64) (any, error) {
			return g.client().Quarantine(c.Context(), aid)
		}),
		agentByAID(g, "release", "Thaw a quarantined agent", func(c *cobra.Command, aid uint64) (any, error) {
			return g.client().Release(c.Context(), aid)
		}),
		capChange(g, "grant"), capChange(g, "revoke"), agentPresent(g), agentMemory(g))
	return cmd
}

func agentSpawn(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "spawn NAME|FILE",
		Short: "Spawn the agents of a signed manifest (FILE and FILE.sig); prints the new AIDs",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path, err := manifest.Find(args[0])
			if err != nil {
				return err
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			sig, err := os.ReadFile(path + ".sig")
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
			agents, err := g.client().AgentSpawn(cmd.Context(), api.SpawnRequest{File: filepath.Base(path), Manifest: data, Signature: sig})
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(os.Stdout, agents)
			}
			for _, a := range agents {
				fmt.Println(a.AID)
			}
			if len(agents) > 0 {
				fmt.Fprintf(os.Stderr, "spawned %d agents of %s\n", len(agents), agents[0].Workload)
			}
			return nil
		},
	}
}

func agentRun(g *globals) *cobra.Command {
	var req api.RunRequest
	var qb api.QuotaBudget
	var mem, high, pids string
	cmd := &cobra.Command{
		Use:   "run [--name N] [--class C] [--user U] [--cap CAP]... [--workdir D] [--cpu-weight N] [--cpu-max \"QUOTA PERIOD\"] [--memory BYTES|max] [--memory-high BYTES] [--pids N|max] -- CMD [ARG...]",
		Short: "Run one command as an agent, without a manifest file; prints the AID",
		RunE: func(cmd *cobra.Command, args []string) error {
			dash := cmd.ArgsLenAtDash()
			if dash < 0 || len(args) == dash {
				return usagef("agent run: give the command after --, e.g. coconut agent run -- /bin/echo hi")
			}
			if dash > 0 {
				return usagef("agent run: unexpected %q before --", args[0])
			}
			prog := args[0]
			if !filepath.IsAbs(prog) {
				p, err := exec.LookPath(prog)
				if err != nil {
					return err
				}
				if prog, err = filepath.Abs(p); err != nil {
					return err
				}
			}
			req.Command = append([]string{filepath.Clean(prog)}, args[1:]...)
			// The budget travels with the request so the agent's first
			// instruction already runs under it.
			for _, f := range []struct {
				name, in string
				out      *int64
			}{{"memory", mem, &qb.MemoryMax}, {"memory-high", high, &qb.MemoryHigh}} {
				if f.in == "" {
					continue
				}
				n, err := quota.ParseSize(f.in)
				if err != nil || n < 0 && f.name != "memory" {
					return usagef("--%s %q: want a size such as 512M or 2G", f.name, f.in)
				}
				*f.out = n // -1: --memory max, no limit (not the host's default)
			}
			if pids != "" {
				n, err := runPids(pids)
				if err != nil {
					return err
				}
				qb.Pids = n
			}
			if qb != (api.QuotaBudget{}) {
				req.Quota = &qb
			}
			if req.Workdir == "" {
				req.Workdir, _ = os.Getwd()
			} else if abs, err := filepath.Abs(req.Workdir); err == nil {
				req.Workdir = abs
			}
			a, err := g.client().AgentRun(cmd.Context(), req)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(os.Stdout, a)
			}
			fmt.Println(a.AID)
			return nil
		},
	}
	cmd.Flags().StringVar(&req.Name, "name", "", "agent name (default: derived from the command's base name, e.g. python3.11 → python3-11)")
	cmd.Flags().StringVar(&req.Class, "class", "", "agent class (default: run)")
	cmd.Flags().StringVar(&req.User, "user", "", "user to run as (default: you)")
	cmd.Flags().StringArrayVar(&req.Caps, "cap", nil, "capability DOMAIN.VERB:SCOPE (repeatable)")
	cmd.Flags().StringVar(&req.Workdir, "workdir", "", "working directory (default: the current one)")
	cmd.Flags().IntVar(&qb.CPUWeight, "cpu-weight", 0, "CPU weight 1..10000 (default: the host's, see doctor)")
	cmd.Flags().StringVar(&qb.CPUMax, "cpu-max", "", "CPU max \"QUOTA PERIOD\" in µs, as cgroup cpu.max")
	cmd.Flags().StringVar(&mem, "memory", "", "memory max from the first instruction: bytes or 512M, 2G; max: none (default: the host's, see doctor)")
	cmd.Flags().StringVar(&high, "memory-high", "", "memory high (v1: the soft limit): bytes or 512M")
	cmd.Flags().StringVar(&pids, "pids", "", "tasks max; max: none (default: the host's, see doctor)")
	cmd.Flags().StringVar(&req.OnDenyStorm, "on-deny-storm", "", "deny storm policy ACTION[,rate=N][,window=D]: throttle, quarantine, kill or none (default: the host's, see doctor)")
	return cmd
}

func agentLs(g *globals) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use: "ls [--all]", Short: "List agents", Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			agents, err := g.client().Agents(cmd.Context(), all)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(os.Stdout, agents)
			}
			tw := table(os.Stdout)
			fmt.Fprintln(tw, "AID\tNAME\tCLASS\tSTATE\tPID\tUSER\tCGROUP ID\tAGE")
			for _, a := range agents {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\t%d\t%s\n", a.AID, a.Name, a.Class, a.State, a.PID, a.User, a.CgroupID,
					time.Since(a.SpawnTime).Round(time.Second))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "include ended agents")
	return cmd
}

// agentByAID builds a command that takes one AID and prints an agent.
func agentByAID(g *globals, name, short string, fn func(*cobra.Command, uint64) (any, error)) *cobra.Command {
	return &cobra.Command{
		Use: name + " AID", Short: short, Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			aid, err := parseAID(args[0])
			if err != nil {
				return err
			}
			v, err := fn(cmd, aid)
			if err != nil {
				return err
			}
			if a, ok := v.(*api.Agent); ok && !g.json {
				fmt.Printf("%d %s %s\n", a.AID, a.Name, a.State)
				return nil
			}
			return printJSON(os.Stdout, v)
		},
	}
}

// agentKill is idempotent: an agent that already ended is reported as
// such (exit 0), in whichever terminal state it reached.
func agentKill(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "kill AID", Short: "End an agent and everything it started (Terminated-revoked); an ended agent is left as it is", Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			aid, err := parseAID(args[0])
			if err != nil {
				return err
			}
			c := g.client()
			before, err := c.Agent(cmd.Context(), aid)
			if err != nil {
				return err
			}
			a := before
			ended := state.State(before.State).Terminal()
			if !ended {
				if a, err = c.Kill(cmd.Context(), aid); err != nil {
					return err
				}
			}
			if g.json {
				return printJSON(os.Stdout, killResult{Agent: a, AlreadyEnded: ended})
			}
			if ended {
				fmt.Printf("%d %s already ended (%s): nothing to kill\n", a.AID, a.Name, a.State)
				return nil
			}
			fmt.Printf("%d %s %s\n", a.AID, a.Name, a.State)
			return nil
		},
	}
}

// killResult is `agent kill --json`: the agent object, and whether it had
// already ended before this call.
type killResult struct {
	*api.Agent
	AlreadyEnded bool `json:"already_ended"`
}

func agentInspect(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "inspect AID", Short: "Show everything about an agent", Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			aid, err := parseAID(args[0])
			if err != nil {
				return err
			}
			c := g.client()
			a, err := c.Agent(cmd.Context(), aid)
			if err != nil {
				return err
			}
			q, qerr := c.AgentQuota(cmd.Context(), aid, nil)
			if g.json {
				out := map[string]any{"agent": a}
				if qerr == nil {
					out["quota"] = q
				}
				return printJSON(os.Stdout, out)
			}
			tw := table(os.Stdout)
			row := func(k string, v any) { fmt.Fprintf(tw, "%s\t%v\n", k, v) }
			row("aid", a.AID)
			row("name", a.Name)
			row("class", a.Class)
			row("workload", a.Workload)
			row("state", a.State)
			if a.Reason != "" {
				row("reason", a.Reason)
			}
			if a.ExitStatus != nil {
				row("exit status", *a.ExitStatus)
			}
			row("pid", a.PID)
			row("user", fmt.Sprintf("%s (uid %d)", a.User, a.UID))
			row("authorized by uid", a.Owner)
			row("cgroup", fmt.Sprintf("%s (id %d)", a.CgroupPath, a.CgroupID))
			row("command", strings.Join(a.Command, " "))
			row("binary sha256", a.BinarySHA)
			row("spawned", a.SpawnTime.Local().Format(time.RFC3339))
			if !a.EndTime.IsZero() {
				row("ended", a.EndTime.Local().Format(time.RFC3339))
			}
			row("capabilities", strings.Join(a.Caps, " "))
			if qerr == nil {
				row("cpu used", time.Duration(q.Usage.CPUUsec)*time.Microsecond)
				if q.Usage.MemoryCurrent >= 0 {
					row("memory now / peak", fmtSize(q.Usage.MemoryCurrent)+" / "+fmtSize(q.Usage.MemoryPeak))
				}
				row("oom kills", q.Usage.OOMKills)
				row("processes", q.Usage.Pids)
				row("quota", fmt.Sprintf("cpu weight %d, memory max %s, pids %d, tokens %d",
					q.Budget.CPUWeight, fmtSize(q.Budget.MemoryMax), q.Budget.Pids, q.Budget.Tokens))
			}
			row("log", a.LogPath)
			return tw.Flush()
		},
	}
}

func agentLogs(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "logs AID", Short: "Print an agent's captured stdout and stderr", Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			aid, err := parseAID(args[0])
			if err != nil {
				return err
			}
			return g.client().Logs(cmd.Context(), aid, os.Stdout)
		},
	}
}

func agentCaps(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "caps AID", Short: "List an agent's current capabilities", Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			aid, err := parseAID(args[0])
			if err != nil {
				return err
			}
			caps, err := g.client().Caps(cmd.Context(), aid)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(os.Stdout, caps)
			}
			for _, c := range caps {
				fmt.Println(c)
			}
			return nil
		},
	}
}

func capChange(g *globals, verb string) *cobra.Command {
	return &cobra.Command{
		Use: verb + " AID CAP...", Short: strings.ToUpper(verb[:1]) + verb[1:] + " capabilities (all or nothing)", Args: minArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			aid, err := parseAID(args[0])
			if err != nil {
				return err
			}
			if verb == "grant" {
				caps, err := g.client().AgentCapGrant(cmd.Context(), aid, args[1:])
				if err != nil {
					return err
				}
				return printJSON(os.Stdout, caps)
			}
			return revoke(cmd, g, aid, args[1:])
		},
	}
}

// revokeResult is `agent revoke --json`: the bundle after the revoke, and
// whether an agent (this one, or one it delegated to) had to be
// quarantined for it to hold, and why.
type revokeResult struct {
	AID         uint64   `json:"aid"`
	Revoked     bool     `json:"revoked"`
	Caps        []string `json:"caps"`
	Quarantined bool     `json:"quarantined"`
	Reason      string   `json:"reason,omitempty"`
}

// revoke runs agent_cap_revoke. A revoke that took effect but had to
// quarantine the agent (it held a descriptor open under the scope, or
// file access cannot be cut while it runs) is answered 409 by the daemon
// with the reason; the operation happened, so it exits 0 and says so on
// stderr once the agent is seen quarantined with the scope gone.
func revoke(cmd *cobra.Command, g *globals, aid uint64, want []string) error {
	c := g.client()
	res := revokeResult{AID: aid, Revoked: true}
	caps, err := c.AgentCapRevoke(cmd.Context(), aid, want)
	if err != nil {
		if !errors.Is(err, api.ErrConflict) {
			return err
		}
		// The scope is gone from the agent: the revoke took effect, and the
		// daemon quarantined the agent, or (a cascade) an agent it had
		// delegated to, for it to hold. Otherwise it was refused.
		a, aerr := c.Agent(cmd.Context(), aid)
		reason := oneLine(err)
		if aerr != nil || stillHeld(a.Caps, want) || (a.State != string(state.Quarantined) && !strings.Contains(reason, "quarantined")) {
			return err
		}
		caps, res.Quarantined, res.Reason = a.Caps, true, reason
		fmt.Fprintf(os.Stderr, "coconut: revoked; quarantined for it to hold: %s\n", reason)
	}
	res.Caps = caps
	if res.Caps == nil {
		res.Caps = []string{}
	}
	if g.json {
		return printJSON(os.Stdout, res)
	}
	return printJSON(os.Stdout, res.Caps)
}

// stillHeld reports whether caps holds anything one of revoked covers.
func stillHeld(caps, revoked []string) bool {
	for _, r := range revoked {
		rc, err := capability.Parse(r)
		if err != nil {
			return true
		}
		for _, s := range caps {
			if c, err := capability.Parse(s); err == nil && policy.Within([]capability.Cap{rc}, c) {
				return true
			}
		}
	}
	return false
}

func agentQuota(g *globals) *cobra.Command {
	var b api.QuotaBudget
	var mem, high string
	cmd := &cobra.Command{
		Use:   "quota AID [--cpu-weight N] [--cpu-max \"QUOTA PERIOD\"] [--memory BYTES] [--memory-high BYTES] [--pids N] [--io-weight N] [--tokens N]",
		Short: "Read or change an agent's budget live (-1 or max removes a limit)", Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			aid, err := parseAID(args[0])
			if err != nil {
				return err
			}
			var set *api.QuotaBudget
			for _, f := range []string{"cpu-weight", "cpu-max", "memory", "memory-high", "pids", "io-weight", "tokens"} {
				if cmd.Flags().Changed(f) {
					set = &b
				}
			}
			for _, f := range []struct {
				flag string
				in   string
				dst  *int64
			}{{"memory", mem, &b.MemoryMax}, {"memory-high", high, &b.MemoryHigh}} {
				if cmd.Flags().Changed(f.flag) {
					n, err := quota.ParseSize(f.in)
					if f.in == "-1" {
						n, err = -1, nil
					}
					if err != nil {
						return usagef("--%s: %v", f.flag, err)
					}
					if n == 0 {
						return usagef("--%s 0: use max (or -1) to remove the limit", f.flag)
					}
					*f.dst = n
				}
			}
			q, err := g.client().AgentQuota(cmd.Context(), aid, set)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(os.Stdout, q)
			}
			tw := table(os.Stdout)
			lim := func(v int64, size bool) string {
				switch {
				case v == 0:
					return "unlimited"
				case size:
					return fmtSize(v)
				}
				return fmt.Sprint(v)
			}
			fmt.Fprintf(tw, "controllers\t%s\n", q.Controllers)
			fmt.Fprintf(tw, "cpu weight\t%s\n", map[bool]string{true: "100 (default)", false: fmt.Sprint(q.Budget.CPUWeight)}[q.Budget.CPUWeight == 0])
			fmt.Fprintf(tw, "cpu max\t%s\n", map[bool]string{true: "unlimited", false: q.Budget.CPUMax}[q.Budget.CPUMax == ""])
			fmt.Fprintf(tw, "memory max / high\t%s / %s\n", lim(q.Budget.MemoryMax, true), lim(q.Budget.MemoryHigh, true))
			fmt.Fprintf(tw, "pids\t%s\n", lim(int64(q.Budget.Pids), false))
			fmt.Fprintf(tw, "io weight\t%s\n", lim(int64(q.Budget.IOWeight), false))
			fmt.Fprintf(tw, "tokens\t%s\n", lim(q.Budget.Tokens, false))
			fmt.Fprintf(tw, "cpu used\t%v\n", time.Duration(q.Usage.CPUUsec)*time.Microsecond)
			if q.Usage.MemoryCurrent >= 0 {
				fmt.Fprintf(tw, "memory now / peak\t%s / %s\n", fmtSize(q.Usage.MemoryCurrent), fmtSize(q.Usage.MemoryPeak))
			}
			fmt.Fprintf(tw, "processes\t%d\n", q.Usage.Pids)
			fmt.Fprintf(tw, "oom kills\t%d\n", q.Usage.OOMKills)
			if len(q.Unenforced) > 0 {
				fmt.Fprintf(tw, "not enforced here\t%s\n", strings.Join(q.Unenforced, ", "))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().IntVar(&b.CPUWeight, "cpu-weight", 0, "CPU weight 1..10000 (-1: back to the default, 100)")
	cmd.Flags().StringVar(&b.CPUMax, "cpu-max", "", `CPU max "QUOTA PERIOD" in µs, e.g. "50000 100000" (max: none)`)
	cmd.Flags().StringVar(&mem, "memory", "", "memory max: bytes or 512M, 2G (max: none)")
	cmd.Flags().StringVar(&high, "memory-high", "", "memory high (v1: the soft limit): bytes or 512M (max: none)")
	cmd.Flags().IntVar(&b.Pids, "pids", 0, "max processes (-1: none)")
	cmd.Flags().IntVar(&b.IOWeight, "io-weight", 0, "IO weight 1..10000, where the io controller exists (-1: default)")
	cmd.Flags().Int64Var(&b.Tokens, "tokens", 0, "inference token budget (-1: none)")
	return cmd
}

func agentMemory(g *globals) *cobra.Command {
	var tier, alloc string
	cmd := &cobra.Command{
		Use: "memory AID [--tier hbm|ram|ssd --alloc BYTES]", Short: "Show used/limit per memory tier, or allocate from one (hbm: negative frees)", Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			aid, err := parseAID(args[0])
			if err != nil {
				return err
			}
			var n int64
			if (tier == "") != (alloc == "") {
				return usagef("--tier and --alloc go together")
			}
			if alloc != "" {
				neg := strings.HasPrefix(alloc, "-")
				if n, err = quota.ParseSize(strings.TrimPrefix(alloc, "-")); err != nil || n <= 0 {
					return usagef("--alloc %q: want a positive size such as 1G, or -SIZE to free hbm", alloc)
				}
				if neg {
					n = -n
				}
			}
			out, err := g.client().AgentMemoryTier(cmd.Context(), aid, tier, n)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(os.Stdout, out)
			}
			tw := table(os.Stdout)
			fmt.Fprintln(tw, "TIER\tUSED\tLIMIT\tPATH")
			for _, t := range []string{"hbm", "ram", "ssd"} {
				m, _ := out[t].(map[string]any)
				used, _ := m["used"].(float64)
				limit, _ := m["limit"].(float64)
				path, _ := m["path"].(string)
				ls := "none"
				if limit > 0 {
					ls = fmtSize(int64(limit))
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t, fmtSize(int64(used)), ls, path)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&tier, "tier", "", "hbm, ram or ssd")
	cmd.Flags().StringVar(&alloc, "alloc", "", "bytes to allocate (512M, 2G; -SIZE frees hbm)")
	return cmd
}

func agentAttest(g *globals) *cobra.Command {
	var out, file string
	var verify bool
	cmd := &cobra.Command{
		Use:   "attest AID [--out FILE] [--verify] | attest --verify --file FILE",
		Short: "Fetch an agent's attestation (in-toto in DSSE); --verify checks it offline against the host key and trust store",
		RunE: func(cmd *cobra.Command, args []string) error {
			var env []byte
			switch {
			case file != "" && len(args) == 0:
				b, err := os.ReadFile(file)
				if err != nil {
					return err
				}
				env, verify = b, true
			case file == "" && len(args) == 1:
				aid, err := parseAID(args[0])
				if err != nil {
					return err
				}
				att, err := g.client().AgentAttest(cmd.Context(), aid)
				if err != nil {
					return err
				}
				env = att.Envelope
			default:
				return usagef("agent attest: give an AID, or --file FILE to verify a saved attestation")
			}
			if out != "" {
				if err := os.WriteFile(out, env, 0o644); err != nil {
					return err
				}
			}
			if !verify {
				if out == "" {
					os.Stdout.Write(env)
					fmt.Println()
				}
				return nil
			}
			claims, err := verifyAttestation(g, env)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(os.Stdout, claims)
			}
			fmt.Printf("attestation OK: agent %d (%s) on host %s, signed by host key %s\n", claims.AID, claims.Name, claims.HostID, claims.HostKeyID)
			fmt.Printf("  binary %s sha256:%s\n", claims.Binary.Path, claims.Binary.SHA256)
			if claims.Manifest != nil {
				fmt.Printf("  manifest %s (%s) sha256:%s signed by %s\n", claims.Manifest.Name, claims.Manifest.File, claims.Manifest.SHA256, claims.Manifest.SignerKeyID)
			}
			fmt.Printf("  authorized by uid %d (%s) via %s; runs as %s; cgroup id %d\n", claims.Authorizer.UID, claims.Authorizer.User, claims.Authorizer.Via, claims.User, claims.CgroupID)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "write the envelope to FILE")
	cmd.Flags().StringVar(&file, "file", "", "verify a saved envelope instead of asking the daemon")
	cmd.Flags().BoolVar(&verify, "verify", false, "verify offline against the host key and trust store in --state-dir")
	return cmd
}

// verifyAttestation checks an envelope with only files: the host's public
// key and the trust store of the state directory.
func verifyAttestation(g *globals, env []byte) (*attest.Claims, error) {
	pubPath := statedir.HostPub(g.state())
	hostPub, err := sign.LoadPublicKey(pubPath)
	if err != nil {
		return nil, fmt.Errorf("host key for offline verification: %w (use --state-dir)", err)
	}
	trust, err := sign.OpenTrust(statedir.Trust(g.state()))
	if err != nil {
		return nil, err
	}
	return attest.Verify(env, ed25519.PublicKey(hostPub), trust)
}
