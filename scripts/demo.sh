#!/usr/bin/env bash
# The dream-team demo on embedded defaults (run as root, after `make install`;
# `make demo` does both). It follows Maya's story: a key, trust, a signed
# manifest, 31 agents, an attestation checked offline, the audit chain.
# KEEP=1 leaves the agents and the daemon running afterwards.
set -euo pipefail

SOCK=${COCONUT_SOCKET:-/run/coconut/coconut.sock}
export COCONUT_SOCKET=$SOCK
KEYDIR=${KEYDIR:-$HOME/.config/coconut}
DEMO_USER=coconut-demo
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

[ "$(id -u)" = 0 ] || { echo "demo: run as root (coconutd creates cgroups and switches users)" >&2; exit 1; }
cd "$(dirname "$0")/.."

started=""
aids=""
if ! coconut doctor >/dev/null 2>&1; then
	say "starting coconutd (log: /var/log/coconutd-demo.log)"
	coconutd >>/var/log/coconutd-demo.log 2>&1 &
	started=$!
	for _ in $(seq 100); do coconut doctor >/dev/null 2>&1 && break; sleep 0.1; done
fi
cleanup() {
	if [ -z "${KEEP:-}" ]; then
		for aid in ${aids:-}; do
			coconut agent kill "$aid" >/dev/null || true
		done
		[ -n "$started" ] && kill -TERM "$started" 2>/dev/null || true
	fi
}
trap cleanup EXIT
coconut doctor

# Root's agents run as an unprivileged demo user with a project of its own
# (and a fake SSH key for the nosy reviewer to try).
id "$DEMO_USER" >/dev/null 2>&1 || useradd --create-home --user-group --shell /bin/sh --comment "Coconut demo agents" "$DEMO_USER"
home=$(getent passwd "$DEMO_USER" | cut -d: -f6)
# Write scopes must exist at spawn: the Landlock floor attaches to inodes.
install -d -o "$DEMO_USER" -g "$DEMO_USER" "$home/projects/dream-team" "$home/.ssh" \
	"$home/projects/dream-team/notes" "$home/projects/dream-team/notes/"{planner,researcher,coder,reviewer}
cp -r README.md docs "$home/projects/dream-team/" && chown -R "$DEMO_USER:" "$home/projects/dream-team"
[ -f "$home/.ssh/id_ed25519" ] || { echo "demo key, not a real one" >"$home/.ssh/id_ed25519"; chown "$DEMO_USER:" "$home/.ssh/id_ed25519"; chmod 600 "$home/.ssh/id_ed25519"; }

say "coconut key gen / trust add / manifest sign"
[ -f "$KEYDIR/maya.key" ] || coconut key gen --out "$KEYDIR/maya"
coconut trust add "$KEYDIR/maya.pub"
coconut manifest sign examples/dream-team/dream-team.yaml --key "$KEYDIR/maya.key"

say "coconut agent spawn dream-team"
start=$(date +%s%N)
aids=$(coconut agent spawn dream-team)
echo "31 agents Active in $(( ($(date +%s%N) - start) / 1000000 )) ms"
coconut agent ls

nosy=$(echo "$aids" | tail -n 1) # the manifest lists the nosy reviewer last
say "coconut agent attest $nosy --verify"
coconut agent attest "$nosy" --verify

sleep 4
say "coconut agent logs $nosy (the nosy reviewer)"
coconut agent logs "$nosy" | head -8

say "coconut top (inference through the broker, per agent)"
coconut top | sed -n 1,12p # sed reads it all: no SIGPIPE under pipefail

say "coconut audit tail --aid $nosy"
coconut audit tail --aid "$nosy"
say "coconut audit verify"
coconut audit verify

echo
echo "AIDs: $(echo $aids | tr '\n' ' ')"
[ -n "${KEEP:-}" ] && echo "KEEP=1: agents and daemon left running; end them with: coconut agent kill AID" || echo "ending the demo's agents (KEEP=1 keeps them)"
