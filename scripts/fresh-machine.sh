#!/usr/bin/env bash
# The fresh-machine test (slow: `make test-slow`, or COCONUT_SLOW=1 bash .ci/run).
# A minimal Debian bookworm made with mmdebstrap from this machine's mirror
# (cached as a tarball between runs), the .deb installed inside with apt so
# its dependencies resolve, `coconut init --yes` and `coconut doctor` run
# inside, the dream team spawned until the nosy reviewer's deny, the unit
# checked with `systemd-analyze verify`, then remove and purge, checking
# what is left. Run as root, after `make deb`.
#
# Everything runs in a private mount namespace (its mounts vanish with it)
# and in a cgroup of its own, so the chroot's coconutd never meets a
# coconutd of the host. What a chroot cannot give (systemd as PID 1) is said.
set -euo pipefail
cd "$(dirname "$0")/.."
DEB=${1:-$(ls -t coconut_*_amd64.deb 2>/dev/null | head -n 1)}
[ -f "$DEB" ] || { echo "fresh-machine: no .deb (run make deb)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "fresh-machine: run as root" >&2; exit 1; }
command -v mmdebstrap >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap; }

if [ -z "${FRESH_INNER:-}" ]; then
	# Own cgroup (a child of ours), then a private mount namespace.
	cg_root=/sys/fs/cgroup
	[ -d /sys/fs/cgroup/unified ] && [ ! -f /sys/fs/cgroup/cgroup.controllers ] && cg_root=/sys/fs/cgroup/unified
	self_cg=$(awk -F: '$1 == "0" {print $3}' /proc/self/cgroup)
	cg="$cg_root${self_cg%/}/coconut-fresh-$$"
	mkdir "$cg"
	echo $$ >"$cg/cgroup.procs"
	rc=0
	FRESH_INNER=1 unshare --mount --propagation private "$0" "$DEB" || rc=$?
	# Whatever the chroot left running (agents, daemon) ends with its cgroup.
	echo $$ >"$cg/../cgroup.procs"
	for d in $(find "$cg" -mindepth 1 -depth -type d 2>/dev/null); do
		[ -f "$d/cgroup.kill" ] && echo 1 >"$d/cgroup.kill" 2>/dev/null || true
		rmdir "$d" 2>/dev/null || true
	done
	[ -f "$cg/cgroup.kill" ] && echo 1 >"$cg/cgroup.kill"
	for _ in $(seq 50); do rmdir "$cg" 2>/dev/null && break; sleep 0.1; done
	exit $rc
fi

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
fail() { echo "fresh-machine: FAIL: $*" >&2; exit 1; }
CACHE=${COCONUT_FRESH_CACHE:-/var/cache/coconut-fresh}
INCLUDE=systemd,ca-certificates
TARBALL="$CACHE/bookworm-$(echo "$INCLUDE" | sha256sum | cut -c1-12).tar"
mkdir -p "$CACHE"
t0=$(date +%s%N)
if [ ! -f "$TARBALL" ]; then
	say "mmdebstrap bookworm (cached in $TARBALL)"
	mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
	[ -n "$mirror" ] || mirror=$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list)
	mmdebstrap --variant=apt --include="$INCLUDE" bookworm "$CACHE/partial-$$.tar" "$mirror"
	mv "$CACHE/partial-$$.tar" "$TARBALL"
fi
ROOT=$(mktemp -d /var/tmp/coconut-fresh-root.XXXXXX)
# The test's verdict is the script's status; the clean-up only says when
# it fails. Lazy unmounts: a busy submount of the rbound /sys must not
# keep the tree (rm --one-file-system would skip it and leave it behind).
cleanup() {
	rc=$?
	for m in proc sys dev run; do umount -R -l "$ROOT/$m" 2>/dev/null || true; done
	rm -rf --one-file-system "$ROOT" || echo "fresh-machine: could not remove $ROOT" >&2
	exit $rc
}
trap cleanup EXIT
tar -xf "$TARBALL" -C "$ROOT"
mount -t proc proc "$ROOT/proc"
mount --rbind /sys "$ROOT/sys"
mount -t bpf bpf "$ROOT/sys/fs/bpf" # a bpffs of its own: pins never meet the host's
mount --rbind /dev "$ROOT/dev"
mount -t tmpfs tmpfs "$ROOT/run"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
inside() { chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"; }

say "apt-get install ./$(basename "$DEB")"
cp "$DEB" "$ROOT/tmp/coconut.deb"
inside apt-get update -qq
inside env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq /tmp/coconut.deb
inside test -x /usr/bin/coconut && inside test -x /usr/libexec/coconut/coconut-trampoline || fail "binaries not installed"
inside man -w coconut >/dev/null 2>&1 || inside test -f /usr/share/man/man1/coconut.1.gz || fail "no coconut(1)"

say "systemd-analyze verify coconutd.service"
inside systemd-analyze verify /usr/lib/systemd/system/coconutd.service || fail "systemd-analyze verify"
grep -q '^Type=notify' "$ROOT/usr/lib/systemd/system/coconutd.service" &&
	grep -q '^Delegate=yes' "$ROOT/usr/lib/systemd/system/coconutd.service" &&
	grep -q '^KillMode=process' "$ROOT/usr/lib/systemd/system/coconutd.service" || fail "unit lacks Type=notify/Delegate=yes/KillMode=process"

say "coconut init --yes (PID 1 here is not systemd: init starts coconutd itself)"
installed=$(date +%s%N)
inside coconut init --yes | tee "$ROOT/tmp/init.out"
grep -q 'started it myself' "$ROOT/tmp/init.out" || fail "init did not say it started coconutd itself"
inside test -f /etc/coconut/coconut.toml || fail "no /etc/coconut/coconut.toml"
[ "$(inside stat -c '%a %U' /home/coconut-demo/.config/coconut/coconut-demo.key)" = "600 coconut-demo" ] || fail "signing key mode/owner"

say "coconut doctor"
inside coconut doctor || echo "(doctor exit $?: see above for what a chroot lacks)"

say "the dream team, as coconut-demo (the command init printed)"
aids=$(inside runuser -u coconut-demo -- coconut agent spawn dream-team)
[ "$(echo "$aids" | wc -l)" = 31 ] || fail "want 31 AIDs, got: $aids"
nosy=$(echo "$aids" | tail -n 1)
for _ in $(seq 200); do
	deny=$(inside coconut audit query --aid "$nosy" --type cap.deny)
	[ -n "$deny" ] && break
	sleep 0.05
done
[ -n "$deny" ] || fail "no deny for the nosy reviewer"
denied=$(date +%s%N)
echo "$deny" | head -n 1
echo "package installed -> coconut init --yes -> deny: $(( (denied - installed) / 1000000 )) ms"
inside coconut audit verify | tail -n 3 || fail "audit verify"
for aid in $aids; do inside coconut agent kill "$aid" >/dev/null; done
pid=$(inside coconut doctor --json | sed -n 's/^  "pid": \([0-9]*\),$/\1/p' | head -n 1)
[ -n "$pid" ] && kill -TERM "$pid" && for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done

say "the installed README's docs/ links resolve"
links=$(grep -o '](docs/[^)#]*' "$ROOT/usr/share/doc/coconut/README.md" | sed 's/^](//' | sort -u)
[ -n "$links" ] || fail "the installed README links nothing under docs/"
for l in $links; do
	[ -e "$ROOT/usr/share/doc/coconut/$l" ] || fail "README links $l, not in /usr/share/doc/coconut"
done

say "apt-get remove coconut: the state stays"
inside env DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq coconut
inside test ! -e /usr/bin/coconut || fail "/usr/bin/coconut left after remove"
inside test -f /var/lib/coconut/keys/host.key || fail "remove deleted /var/lib/coconut"
inside test -f /etc/coconut/coconut.toml || fail "remove deleted /etc/coconut/coconut.toml"

say "apt-get purge coconut: the state goes"
inside env DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq coconut
for p in /var/lib/coconut /etc/coconut /usr/libexec/coconut /usr/share/coconut /usr/share/doc/coconut /usr/lib/systemd/system/coconutd.service; do
	inside test ! -e "$p" || fail "$p left after purge"
done
echo "left after purge (by design: the users init made and their homes):"
(cd "$ROOT" && find . -xdev \( -path ./proc -o -path ./sys -o -path ./dev -o -path ./run \) -prune -o -name '*coconut*' -print | sort)
echo "fresh-machine: OK in $(( ($(date +%s%N) - t0) / 1000000000 )) s"
