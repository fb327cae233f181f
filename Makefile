# Coconut: `sudo make demo` runs the dream team; `sudo make test` runs the tests.
PREFIX  ?= /usr/local
GO      ?= go
BIN     := bin

.PHONY: build install uninstall demo test test-otlp check generate clean deb test-slow vmtest vmbench image test-image image-test

build:
	CGO_ENABLED=0 $(GO) build -o $(BIN)/ ./cmd/coconut ./cmd/coconutd ./cmd/coconut-tail ./cmd/coconut-trampoline ./examples/dream-team/dream-agent ./internal/bench/loads/coconut-burn ./internal/bench/loads/coconut-enforce-probe

install: build
	install -d $(PREFIX)/bin $(PREFIX)/libexec/coconut $(PREFIX)/share/coconut/examples/dream-team
	install -m 0755 $(BIN)/coconut $(BIN)/coconutd $(BIN)/coconut-tail $(PREFIX)/bin/
	install -m 0755 $(BIN)/dream-agent $(BIN)/coconut-trampoline $(BIN)/coconut-burn $(BIN)/coconut-enforce-probe $(PREFIX)/libexec/coconut/
	sed 's|/usr/local/|$(PREFIX)/|g' examples/dream-team/dream-team.yaml >$(PREFIX)/share/coconut/examples/dream-team/dream-team.yaml
	install -d $(PREFIX)/lib/systemd/system && sed 's|/usr/local/|$(PREFIX)/|g' packaging/coconutd.service >$(PREFIX)/lib/systemd/system/coconutd.service
	# issue 13: coconut notify for every desktop user (XDG autostart, systemd user unit)
	install -d $(PREFIX)/lib/systemd/user $(DESTDIR)/etc/xdg/autostart
	sed 's|/usr/local/|$(PREFIX)/|g' packaging/coconut-notify.service > $(PREFIX)/lib/systemd/user/coconut-notify.service
	install -m 0644 packaging/coconut-notify.desktop $(DESTDIR)/etc/xdg/autostart/
	# the docs the units' Documentation= names, docs/ kept so README's links work
	install -d $(PREFIX)/share/doc/coconut/docs && install -m 0644 README.md $(PREFIX)/share/doc/coconut/ && install -m 0644 docs/*.md docs/*.png $(PREFIX)/share/doc/coconut/docs/

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
	rm -f $(PREFIX)/lib/systemd/user/coconut-notify.service $(DESTDIR)/etc/xdg/autostart/coconut-notify.desktop
	rm -rf $(PREFIX)/share/doc/coconut
	-rmdir $(PREFIX)/libexec/coconut $(PREFIX)/share/coconut/examples/dream-team $(PREFIX)/share/coconut/examples $(PREFIX)/share/coconut 2>/dev/null
	-systemctl daemon-reload 2>/dev/null

demo: install
	./scripts/demo.sh

# Tests need root (real cgroups, real users, real processes).
test:
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 20m ./...
	$(MAKE) test-otlp

# The OTLP export against the OpenTelemetry Collector's own receiver: a module
# of its own (test/otlpcollector/go.mod) so the collector's dependency tree
# stays out of coconutd's go.mod.
test-otlp:
	cd test/otlpcollector && $(GO) vet ./... && $(GO) test -count=1 -timeout 10m ./...

clean:
	rm -rf $(BIN)

# --- Debian package (packaging/): coconut_$(DEB_VERSION)_amd64.deb with the
# /usr prefix, built by the nfpm pinned in go.mod's tool block.
DEB_VERSION ?= 0.1.0
DEB_STAGE   := build/deb
deb:
	rm -rf $(DEB_STAGE) && mkdir -p $(DEB_STAGE)/bin $(DEB_STAGE)/man/man5 $(DEB_STAGE)/man/man8 $(DEB_STAGE)/doc
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w -buildid=' -o $(DEB_STAGE)/bin/ ./cmd/coconut ./cmd/coconutd ./cmd/coconut-tail ./cmd/coconut-trampoline ./examples/dream-team/dream-agent ./internal/bench/loads/coconut-burn ./internal/bench/loads/coconut-enforce-probe
	SOURCE_DATE_EPOCH=$$(git log -1 --format=%ct 2>/dev/null || date +%s) $(GO) run ./packaging/gendocs $(DEB_STAGE)/man
	mv $(DEB_STAGE)/man/completions $(DEB_STAGE)/completions
	cp packaging/man/coconut-tail.1 $(DEB_STAGE)/man/man1/ && cp packaging/man/coconut-manifest.5 $(DEB_STAGE)/man/man5/ && cp packaging/man/coconutd.8 $(DEB_STAGE)/man/man8/
	gzip -9n $(DEB_STAGE)/man/man*/*
	sed 's|/usr/local/|/usr/|g' examples/dream-team/dream-team.yaml >$(DEB_STAGE)/dream-team.yaml
	sed 's|/usr/local/|/usr/|g' packaging/coconutd.service >$(DEB_STAGE)/coconutd.service
	sed 's|/usr/local/|/usr/|g' packaging/coconut-notify.service >$(DEB_STAGE)/coconut-notify.service
	sed 's|/usr/local/bin/|/usr/bin/|' packaging/coconut-notify.desktop >$(DEB_STAGE)/coconut-notify.desktop
	# postrm purge runs once coconutd is gone: the reap script goes inside it.
	{ sed '/^#REAP_DEFAULT#$$/,$$d' packaging/deb/postrm; echo "sh -s coconut <<'REAP_DEFAULT' || true"; cat packaging/coconut-reap-default.sh; echo REAP_DEFAULT; sed '1,/^#REAP_DEFAULT#$$/d' packaging/deb/postrm; } >$(DEB_STAGE)/postrm
	cp README.md packaging/deb/copyright $(DEB_STAGE)/doc/ && mkdir -p $(DEB_STAGE)/docs && cp docs/*.md docs/*.png $(DEB_STAGE)/docs/ # docs/ kept: README links there
	printf 'coconut ($(DEB_VERSION)) unstable; urgency=medium\n\n  * Built from %s.\n\n -- Coconut developers <coconut@coconut-os.invalid>  %s\n' \
		"$$(git rev-parse --short HEAD 2>/dev/null || echo a source tree)" "$$(date -R -d @$$(git log -1 --format=%ct 2>/dev/null || date +%s))" | gzip -9n >$(DEB_STAGE)/doc/changelog.gz
	DEB_VERSION=$(DEB_VERSION) $(GO) tool nfpm package --config packaging/nfpm.yaml --packager deb --target coconut_$(DEB_VERSION)_amd64.deb

# The fresh-machine test (slow, about a minute with the chroot cached in
# /var/cache/coconut-fresh): the .deb in a minimal bookworm made by
# mmdebstrap, coconut init --yes, the nosy reviewer's deny, remove, purge.
test-slow: deb
	./scripts/fresh-machine.sh coconut_$(DEB_VERSION)_amd64.deb

# bpf-lsm backend inside qemu guests booting Debian's own kernels (bookworm
# 6.1, trixie 6.12) with bpf in lsm=: this host refuses BPF LSM trampolines.
vmtest:
	bash scripts/vmtest-kernels.sh
	COCONUT_VMTEST=1 $(GO) test -count=1 -v -timeout 15m -run 'TestVM$$' ./internal/vmtest/

# open+close ratios and the revoke race inside the same guests; prints a
# table and writes bin/vmbench.json (COCONUT_VMBENCH_JSON to move it).
vmbench:
	bash scripts/vmtest-kernels.sh
	COCONUT_VMBENCH=1 $(GO) test -count=1 -v -timeout 15m -run 'TestVMBench$$' ./internal/vmtest/

# --- The Coconut image (issue 16; image/, scripts/image-build.sh, docs/image.md):
# a bootable Debian trixie disk (raw and qcow2 in build/image) with the .deb,
# coconutd enabled and bpf in lsm=. Packages cached in /var/cache/coconut-image.
.PHONY: image test-image
image: deb
	nice ./scripts/image-build.sh coconut_$(DEB_VERSION)_amd64.deb

# The boot test (slow: TCG, several minutes): qemu with swtpm, the checks of
# the image's test unit as go test results (-tags image).
test-image: image
	$(GO) test -tags image -count=1 -v -timeout 40m ./test/image/

# The issue's name for the same target.
image-test: test-image
