# Coconut: `sudo make demo` runs the dream team; `sudo make test` runs the tests.
PREFIX  ?= /usr/local
GO      ?= go
BIN     := bin

.PHONY: build install uninstall demo test check generate clean

build:
	CGO_ENABLED=0 $(GO) build -o $(BIN)/ ./cmd/coconut ./cmd/coconutd ./cmd/coconut-tail ./cmd/coconut-trampoline ./cmd/dream-agent ./cmd/coconut-burn ./cmd/coconut-enforce-probe

install: build
	install -d $(PREFIX)/bin $(PREFIX)/libexec/coconut $(PREFIX)/share/coconut/examples/dream-team
	install -m 0755 $(BIN)/coconut $(BIN)/coconutd $(BIN)/coconut-tail $(PREFIX)/bin/
	install -m 0755 $(BIN)/dream-agent $(BIN)/coconut-trampoline $(BIN)/coconut-burn $(BIN)/coconut-enforce-probe $(PREFIX)/libexec/coconut/
	install -m 0644 examples/dream-team/dream-team.yaml $(PREFIX)/share/coconut/examples/dream-team/
	install -d $(PREFIX)/lib/systemd/system && install -m 0644 packaging/coconutd.service $(PREFIX)/lib/systemd/system/
	# issue 13: coconut notify for every desktop user (XDG autostart, systemd user unit)
	install -d $(PREFIX)/lib/systemd/user $(DESTDIR)/etc/xdg/autostart
	sed 's|/usr/local/bin/|$(PREFIX)/bin/|' packaging/coconut-notify.service > $(PREFIX)/lib/systemd/user/coconut-notify.service
	install -m 0644 packaging/coconut-notify.desktop $(DESTDIR)/etc/xdg/autostart/

# Undoes install. First the default state dir's coconutd stops (systemd's
# unit, or a `make demo` daemon through its owner record) and its agents,
# pinned network guard and cgroup subtrees go (coconutd --uninstall
# --kill-agents: nothing could adopt them once the binary is gone). The
# state dir itself, with the audit chain, stays: remove it by hand.
uninstall:
	-systemctl stop coconutd 2>/dev/null
	-pid=$$(sed -n 's/.*"pid":\([0-9]*\).*/\1/p' /run/coconut/owners/coconut.json 2>/dev/null); \
	if [ -n "$$pid" ] && grep -qs coconutd /proc/$$pid/cmdline; then kill -TERM $$pid; \
		for i in $$(seq 50); do kill -0 $$pid 2>/dev/null || break; sleep 0.2; done; fi
	if [ -x $(PREFIX)/bin/coconutd ]; then $(PREFIX)/bin/coconutd --uninstall --kill-agents; fi
	rm -f $(PREFIX)/bin/coconut $(PREFIX)/bin/coconutd $(PREFIX)/bin/coconut-tail
	rm -f $(addprefix $(PREFIX)/libexec/coconut/,dream-agent coconut-trampoline coconut-burn coconut-enforce-probe)
	rm -f $(PREFIX)/share/coconut/examples/dream-team/dream-team.yaml $(PREFIX)/lib/systemd/system/coconutd.service
	-rmdir $(PREFIX)/libexec/coconut $(PREFIX)/share/coconut/examples/dream-team $(PREFIX)/share/coconut/examples $(PREFIX)/share/coconut 2>/dev/null
	-systemctl daemon-reload 2>/dev/null

demo: install
	./scripts/demo.sh

# Tests need root (real cgroups, real users, real processes).
test:
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 20m ./...

clean:
	rm -rf $(BIN)
