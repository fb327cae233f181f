# The Workstation session of the Coconut image: the user named in
# /etc/coconut-image/workstation-user (coconut-image session wrote it) who
# logs in on tty1 gets sway. Without a GPU (no /dev/dri/card0: a VM with
# -vga none, the image test) sway runs on wlroots' headless backend with
# the pixman renderer, so the session (and a grim screenshot) still works.
if [ "$(tty 2>/dev/null)" = /dev/tty1 ] && [ -z "${WAYLAND_DISPLAY:-}" ] &&
	[ -f /etc/coconut-image/workstation-user ] && [ "$(id -un)" = "$(cat /etc/coconut-image/workstation-user)" ] &&
	command -v sway >/dev/null; then
	export XDG_CURRENT_DESKTOP=sway XDG_SESSION_TYPE=wayland
	[ -n "${XDG_RUNTIME_DIR:-}" ] || export XDG_RUNTIME_DIR=/run/user/$(id -u)
	[ -n "${DBUS_SESSION_BUS_ADDRESS:-}" ] || export DBUS_SESSION_BUS_ADDRESS=unix:path=$XDG_RUNTIME_DIR/bus
	if [ ! -e /dev/dri/card0 ]; then
		export WLR_BACKENDS=headless WLR_RENDERER=pixman WLR_LIBINPUT_NO_DEVICES=1
	fi
	exec sway -c /etc/coconut-image/sway/config >"$XDG_RUNTIME_DIR/sway.log" 2>&1
fi
