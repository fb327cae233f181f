package cli

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/coconut-os/coconut/internal/config"
)

// The core checks: the daemon, the kernel facts it reports (api.Check,
// internal/daemon/checks.go) sorted into groups, the enforcer, the audit
// anchor and the deny counters, and what this machine shows without it.
func init() {
	registerDoctorCheck(
		doctorCheck{Group: groupKernel, Name: "cgroup2", Matters: true, Run: localCgroup2},
		doctorCheck{Group: groupKernel, Name: "seccomp", Matters: true, Run: localSeccomp},
		doctorCheck{Group: groupKernel, Name: "btf", Run: localBTF},
		doctorCheck{Group: groupDaemon, Name: "reachable", Matters: true, Run: daemonReachable},
		doctorCheck{Group: groupEnforcer, Name: "backend", Matters: true, Run: enforcerLoaded},
		doctorCheck{Group: groupAnchor, Name: "anchor", Matters: true, Run: anchorKind},
		doctorCheck{Group: groupAnchor, Name: "counters", Run: countersAgree},
		doctorCheck{Group: groupBroker, Name: "listening", Run: brokerListening},
		doctorCheck{Group: groupCenter, Name: "center", Run: centerServing},
		doctorCheck{Group: groupNotifications, Name: "notifications", Run: notificationsSetting},
	)
	// The daemon's own findings, each in its group.
	for _, dc := range []struct{ group, name string }{
		{groupKernel, "cgroup.kill"}, {groupKernel, "lsm"}, {groupKernel, "bpf-lsm"}, {groupKernel, "kernel-audit"},
		{groupEnforcer, "netguard-pin"}, {groupEnforcer, "unix-sockets"},
	} {
		registerDoctorCheck(doctorCheck{Group: dc.group, Name: dc.name, Run: daemonFinding(dc.name)})
	}
	registerDoctorCheck(doctorCheck{Group: groupDaemon, Name: "other", Run: daemonUnsorted})
}

// daemonFindingsSorted are the names the loop above places; any other
// finding the daemon reports is printed under daemon, so none is lost.
var daemonFindingsSorted = map[string]bool{"cgroup2": true, "cgroup.kill": true, "lsm": true, "bpf-lsm": true, "kernel-audit": true, "netguard-pin": true, "unix-sockets": true}

// fixes says what to do about a daemon finding that is not OK.
var fixes = map[string]string{
	"cgroup.kill":  "use Linux 5.14 or later",
	"lsm":          "mount securityfs: mount -t securityfs securityfs /sys/kernel/security",
	"bpf-lsm":      "add bpf to the kernel's lsm= boot parameter (e.g. lsm=landlock,lockdown,yama,bpf) for the bpf-lsm backend; portable works without it",
	"kernel-audit": "auditctl -e 1 (or audit=1 on the kernel command line) to log Landlock floor denials",
	"netguard-pin": "mount bpffs: mount -t bpf bpf /sys/fs/bpf",
	"unix-sockets": "Linux 6.7 or later decides Unix connects in the network guard; before, the supervisor does",
}

func daemonFinding(name string) func(context.Context, *doctorEnv) checkResult {
	return func(_ context.Context, e *doctorEnv) checkResult {
		if e.d == nil {
			return checkResult{Skip: true}
		}
		for _, c := range e.d.Checks {
			if c.Name == name {
				return checkResult{OK: c.OK, Detail: c.Detail, Fix: fixes[name]}
			}
		}
		return checkResult{Skip: true}
	}
}

func daemonUnsorted(_ context.Context, e *doctorEnv) checkResult {
	if e.d == nil {
		return checkResult{Skip: true}
	}
	var bad, all []string
	for _, c := range e.d.Checks {
		if daemonFindingsSorted[c.Name] {
			continue
		}
		all = append(all, c.Name)
		if !c.OK {
			bad = append(bad, c.Name+": "+c.Detail)
		}
	}
	if len(all) == 0 {
		return checkResult{Skip: true}
	}
	if len(bad) > 0 {
		return checkResult{OK: false, Detail: strings.Join(bad, "; ")}
	}
	return checkResult{OK: true, Detail: strings.Join(all, ", ") + ": ok"}
}

func daemonReachable(_ context.Context, e *doctorEnv) checkResult {
	if e.d != nil {
		return checkResult{OK: true, Detail: fmt.Sprintf("coconutd %s, pid %d, answering", e.d.Version, e.d.PID)}
	}
	fix := "start it: sudo systemctl start coconutd (or sudo coconut init, which sets it up and starts it)"
	if _, err := os.Stat("/run/systemd/system"); err != nil {
		fix = "start it: sudo coconut init (sets it up and starts it; systemd is not PID 1 here), or sudo coconutd &"
	}
	return checkResult{OK: false, Detail: fmt.Sprint(e.err), Fix: fix}
}

func enforcerLoaded(_ context.Context, e *doctorEnv) checkResult {
	if e.d == nil {
		return checkResult{Skip: true}
	}
	if e.d.Enforcer == "" || e.d.Enforcer == "none" {
		return checkResult{OK: false, Detail: "no capability enforcer loaded: no agent can start. " + e.d.EnforcerWhy,
			Fix: "see the kernel group: the portable backend needs Landlock, seccomp user notification and cgroup v2 BPF"}
	}
	return checkResult{OK: true, Detail: e.d.Enforcer + " — " + e.d.EnforcerWhy}
}

func anchorKind(_ context.Context, e *doctorEnv) checkResult {
	if e.d == nil {
		return checkResult{Skip: true}
	}
	switch e.d.Anchor {
	case "tpm":
		return checkResult{OK: true, Detail: "checkpoints anchored in the TPM's NV index"}
	case "fss":
		return checkResult{OK: true, Detail: "checkpoints sealed forward-securely; verify with coconut audit verify --seal-key SEED (the seed shown at set-up, kept off this host)"}
	}
	return checkResult{OK: false, Detail: fmt.Sprintf("anchor %q", e.d.Anchor), Fix: "restart coconutd; its log says why no anchor opened"}
}

func countersAgree(_ context.Context, e *doctorEnv) checkResult {
	if e.d == nil {
		return checkResult{Skip: true}
	}
	k, c := e.d.Counters["kernel_denies"], e.d.Counters["chain_denies"]
	for _, a := range e.d.CountersAlarm {
		// issue 20: a difference seen once is kept across restarts.
		return checkResult{OK: false, Detail: fmt.Sprintf("kernel denies and chain rows differed (%s, by %+d, first seen %s)", a.Source, a.MaxDifference, a.FirstSeen.Format("2006-01-02 15:04:05")),
			Fix: "a release blocker: report it with `coconut doctor --json`; remove STATE/counters-alarm.json once reported"}
	}
	if k != c && e.d.Counters["counters_settled"] == 0 {
		return checkResult{OK: false, Detail: fmt.Sprintf("denies in flight (kernel %d, chain %d so far)", k, c),
			Fix: "run doctor again: a burst is being written; a difference that stays raises the alarm"}
	}
	if k != c {
		return checkResult{OK: false, Detail: fmt.Sprintf("kernel_denies=%d chain_denies=%d: %d denies not in the audit chain", k, c, int64(k)-int64(c)),
			Fix: "the chain refuses appends? see coconutd's log, and report it with `coconut doctor --json`"}
	}
	return checkResult{OK: true, Detail: fmt.Sprintf("every kernel deny is in the chain (%d)", k)}
}

func brokerListening(_ context.Context, e *doctorEnv) checkResult {
	if e.d == nil {
		return checkResult{Skip: true}
	}
	if e.d.BrokerSocket == "" && e.d.BrokerAddr == "" {
		return checkResult{OK: false, Detail: "the inference broker is not serving", Fix: "see coconutd's log ([broker] in the configuration)"}
	}
	return checkResult{OK: true, Detail: fmt.Sprintf("agents reach it at %s and http://%s/v1", e.d.BrokerSocket, e.d.BrokerAddr)}
}

// centerServing says where the Center is, or that it is off and how to
// turn it on. Off is a choice (the server profile), so it never matters.
func centerServing(_ context.Context, e *doctorEnv) checkResult {
	if e.d == nil {
		return checkResult{Skip: true}
	}
	if e.d.CenterAddr == "" {
		return checkResult{OK: false, Detail: "the Center is off (the server profile, or [center] enabled = false, or no profile chosen yet)",
			Fix: "set [center] enabled = true (and addr) in coconut.toml, or choose the workstation profile with sudo coconut init --reconfigure"}
	}
	return checkResult{OK: true, Detail: fmt.Sprintf("serving on http://%s (coconut center prints a login link)", e.d.CenterAddr)}
}

func notificationsSetting(_ context.Context, e *doctorEnv) checkResult {
	c, err := config.Load(config.DefaultPath, false)
	if err != nil {
		return checkResult{OK: false, Detail: err.Error(), Fix: "fix the file, or run sudo coconut init --reconfigure"}
	}
	switch n := c.Setup.Notifications; {
	case n == nil:
		return checkResult{OK: true, Detail: "not chosen (sudo coconut init asks)"}
	case *n:
		return checkResult{OK: true, Detail: "on in " + config.DefaultPath + " (delivered once coconut notify exists)"}
	default:
		return checkResult{OK: true, Detail: "off in " + config.DefaultPath}
	}
}
