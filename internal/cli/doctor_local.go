package cli

import (
	"context"
	"fmt"
	"os"
	"strings"
)

// Kernel checks doctor makes itself, so they answer with the daemon down.

func localCgroup2(_ context.Context, e *doctorEnv) checkResult {
	if e.d != nil {
		for _, c := range e.d.Checks {
			if c.Name == "cgroup2" {
				return checkResult{OK: c.OK, Detail: c.Detail, Fix: "mount the unified hierarchy (cgroup2) at /sys/fs/cgroup or /sys/fs/cgroup/unified"}
			}
		}
	}
	for _, p := range []string{"/sys/fs/cgroup/cgroup.controllers", "/sys/fs/cgroup/unified/cgroup.controllers"} {
		if _, err := os.Stat(p); err == nil {
			return checkResult{OK: true, Detail: "unified hierarchy at " + strings.TrimSuffix(p, "/cgroup.controllers")}
		}
	}
	return checkResult{OK: false, Detail: "no cgroup v2 hierarchy: agents cannot get cgroups of their own",
		Fix: "mount -t cgroup2 none /sys/fs/cgroup (or boot with systemd.unified_cgroup_hierarchy=1)"}
}

func localSeccomp(context.Context, *doctorEnv) checkResult {
	b, err := os.ReadFile("/proc/sys/kernel/seccomp/actions_avail")
	if err != nil {
		return checkResult{OK: false, Detail: fmt.Sprintf("cannot read seccomp's actions (%v)", err), Fix: "a kernel with CONFIG_SECCOMP_FILTER"}
	}
	if !strings.Contains(string(b), "user_notif") {
		return checkResult{OK: false, Detail: "seccomp has no user notification: the supervisor (ECAPABILITY on opens and execs) cannot run",
			Fix: "Linux 5.0 or later with CONFIG_SECCOMP_FILTER"}
	}
	return checkResult{OK: true, Detail: "user notification available (the supervisor answers ECAPABILITY)"}
}

func localBTF(context.Context, *doctorEnv) checkResult {
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		return checkResult{OK: false, Detail: "no kernel BTF: the bpf-lsm backend and BTF-typed tracing cannot load", Fix: "a kernel built with CONFIG_DEBUG_INFO_BTF=y"}
	}
	return checkResult{OK: true, Detail: "/sys/kernel/btf/vmlinux"}
}
