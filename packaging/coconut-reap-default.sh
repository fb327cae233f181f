#!/bin/sh
# coconut-reap-default.sh [NAME]: remove what a coconutd left in the kernel
# for the default state dir (subtree and pin dir NAME, default "coconut"),
# without needing coconutd itself: for a Debian postrm purge, which runs
# once the binary is gone. It ends the agents (cgroup.kill, else SIGKILL
# pid by pid under cgroup.freeze), unpins the network guard (its programs
# detach), removes the subtrees (unified and v1) and the owner record.
# It leaves everything alone while the recorded daemon still runs.
# Where the binary is still there, `coconutd --uninstall --kill-agents`
# does the same with more checks; prefer it (prerm).
set -u
name=${1:-coconut}
case $name in
coconut | coconut-*) ;;
*) echo "coconut-reap-default: $name is not a coconut subtree name" >&2; exit 2 ;;
esac
record=/run/coconut/owners/$name.json
if [ -r "$record" ]; then
	pid=$(sed -n 's/.*"pid":\([0-9]*\).*/\1/p' "$record")
	if [ -n "$pid" ] && grep -qs coconutd "/proc/$pid/cmdline"; then
		echo "coconut-reap-default: coconutd (pid $pid) still runs for $name: left alone" >&2
		exit 0
	fi
fi

# Every directory named $name in a cgroup hierarchy (not below another).
subtrees=$(find /sys/fs/cgroup -mindepth 1 -maxdepth 9 -type d -name "$name" -prune 2>/dev/null)

for root in $subtrees; do
	for a in "$root"/agent-*; do
		[ -d "$a" ] || continue
		if [ -e "$a/cgroup.kill" ]; then
			echo 1 >"$a/cgroup.kill"
		else
			[ -e "$a/cgroup.freeze" ] && echo 1 >"$a/cgroup.freeze"
			for i in 1 2 3 4 5 6 7 8 9 10; do
				pids=$(cat "$a/cgroup.procs" 2>/dev/null)
				[ -n "$pids" ] || break
				kill -KILL $pids 2>/dev/null
				sleep 0.1
			done
			[ -e "$a/cgroup.freeze" ] && echo 0 >"$a/cgroup.freeze"
		fi
	done
done
for root in $subtrees; do
	for a in "$root"/agent-*; do
		[ -d "$a" ] || continue
		for i in $(seq 100); do
			[ -z "$(find "$a" -name cgroup.procs -exec cat {} + 2>/dev/null)" ] && break
			sleep 0.05
		done
	done
done

# Removing a link's pin drops the last reference: the program detaches.
if [ -d "/sys/fs/bpf/$name" ]; then
	rm -f "/sys/fs/bpf/$name"/* && rmdir "/sys/fs/bpf/$name" || echo "coconut-reap-default: could not unpin /sys/fs/bpf/$name" >&2
fi

status=0
for root in $subtrees; do
	# Deepest first; cgroup directories go with rmdir.
	find "$root" -depth -type d -exec rmdir {} + 2>/dev/null
	if [ -d "$root" ]; then
		echo "coconut-reap-default: could not remove $root" >&2
		status=1
	fi
done
rm -f "$record"
exit $status
