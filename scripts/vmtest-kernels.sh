#!/usr/bin/env bash
# Fetch the Debian kernels the bpf-lsm VM tests boot (apt-get download,
# never installed) and unpack each vmlinuz into the cache:
#   $CACHE/<name>/vmlinuz   (name: bookworm, trixie)
# bookworm comes from the machine's own sources; trixie through a private
# apt state under $CACHE/apt-trixie, so the machine's sources stay as they are.
set -euo pipefail
CACHE=${COCONUT_VMTEST_CACHE:-/var/cache/coconut-vmtest}
MIRROR=${COCONUT_VMTEST_MIRROR:-http://deb.debian.org/debian}
mkdir -p "$CACHE"

# fetch NAME APTOPTS...: download the newest linux-image-*-amd64 (unsigned)
# of that suite and unpack its vmlinuz.
fetch() {
	local name=$1; shift
	local dir=$CACHE/$name
	[ -s "$dir/vmlinuz" ] && return 0
	mkdir -p "$dir/deb"
	local pkg
	pkg=$(apt-cache "$@" depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
	[ -n "$pkg" ] || { echo "vmtest-kernels: no linux-image for $name" >&2; return 1; }
	(cd "$dir/deb" && apt-get "$@" download "$pkg" >/dev/null)
	rm -rf "$dir/root"
	dpkg-deb -x "$dir"/deb/*.deb "$dir/root"
	cp "$dir"/root/boot/vmlinuz-* "$dir/vmlinuz.tmp"
	echo "${pkg}" >"$dir/package"
	rm -rf "$dir/root"
	mv "$dir/vmlinuz.tmp" "$dir/vmlinuz"
}

fetch bookworm

T=$CACHE/apt-trixie
if [ ! -s "$T/lists/updated" ]; then
	mkdir -p "$T/lists/partial" "$T/archives/partial"
	echo "deb $MIRROR trixie main" >"$T/sources.list"
	: >"$T/status"
fi
topts=(-o "Dir::Etc::SourceList=$T/sources.list" -o "Dir::Etc::SourceParts=/nonexistent"
	-o "Dir::State::Lists=$T/lists" -o "Dir::State::status=$T/status" -o "Dir::Cache=$T")
if [ ! -s "$T/lists/updated" ]; then
	apt-get "${topts[@]}" update -qq
	date >"$T/lists/updated"
fi
fetch trixie "${topts[@]}"
for k in bookworm trixie; do echo "$k: $(cat "$CACHE/$k/package")"; done
