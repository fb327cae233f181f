# Coconut: `sudo make demo` runs the dream team; `sudo make test` runs the tests.
PREFIX  ?= /usr/local
GO      ?= go
BIN     := bin

.PHONY: build install demo test check generate clean deb test-slow

build:
	CGO_ENABLED=0 $(GO) build -o $(BIN)/ ./cmd/coconut ./cmd/coconutd ./cmd/coconut-tail ./cmd/coconut-trampoline ./cmd/dream-agent ./cmd/coconut-burn ./cmd/coconut-enforce-probe

install: build
	install -d $(PREFIX)/bin $(PREFIX)/libexec/coconut $(PREFIX)/share/coconut/examples/dream-team
	install -m 0755 $(BIN)/coconut $(BIN)/coconutd $(BIN)/coconut-tail $(PREFIX)/bin/
	install -m 0755 $(BIN)/dream-agent $(BIN)/coconut-trampoline $(BIN)/coconut-burn $(BIN)/coconut-enforce-probe $(PREFIX)/libexec/coconut/
	sed 's|/usr/local/|$(PREFIX)/|g' examples/dream-team/dream-team.yaml >$(PREFIX)/share/coconut/examples/dream-team/dream-team.yaml
	install -d $(PREFIX)/lib/systemd/system && sed 's|/usr/local/|$(PREFIX)/|g' packaging/coconutd.service >$(PREFIX)/lib/systemd/system/coconutd.service

demo: install
	./scripts/demo.sh

# Tests need root (real cgroups, real users, real processes).
test:
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 20m ./...

clean:
	rm -rf $(BIN)

# --- Debian package (packaging/): coconut_$(DEB_VERSION)_amd64.deb with the
# /usr prefix, built by the nfpm pinned in go.mod's tool block.
DEB_VERSION ?= 0.1.0
DEB_STAGE   := build/deb
deb:
	rm -rf $(DEB_STAGE) && mkdir -p $(DEB_STAGE)/bin $(DEB_STAGE)/man/man5 $(DEB_STAGE)/man/man8 $(DEB_STAGE)/doc
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w -buildid=' -o $(DEB_STAGE)/bin/ ./cmd/coconut ./cmd/coconutd ./cmd/coconut-tail ./cmd/coconut-trampoline ./cmd/dream-agent ./cmd/coconut-burn ./cmd/coconut-enforce-probe
	SOURCE_DATE_EPOCH=$$(git log -1 --format=%ct 2>/dev/null || date +%s) $(GO) run ./packaging/gendocs $(DEB_STAGE)/man
	mv $(DEB_STAGE)/man/completions $(DEB_STAGE)/completions
	cp packaging/man/coconut-tail.1 $(DEB_STAGE)/man/man1/ && cp packaging/man/coconut-manifest.5 $(DEB_STAGE)/man/man5/ && cp packaging/man/coconutd.8 $(DEB_STAGE)/man/man8/
	gzip -9n $(DEB_STAGE)/man/man*/*
	sed 's|/usr/local/|/usr/|g' examples/dream-team/dream-team.yaml >$(DEB_STAGE)/dream-team.yaml
	sed 's|/usr/local/|/usr/|g' packaging/coconutd.service >$(DEB_STAGE)/coconutd.service
	cp README.md $(DEB_STAGE)/doc/ && cp docs/*.md $(DEB_STAGE)/doc/ && cp packaging/deb/copyright $(DEB_STAGE)/doc/
	printf 'coconut ($(DEB_VERSION)) unstable; urgency=medium\n\n  * Built from %s.\n\n -- Coconut developers <coconut@coconut-os.invalid>  %s\n' \
		"$$(git rev-parse --short HEAD 2>/dev/null || echo a source tree)" "$$(date -R -d @$$(git log -1 --format=%ct 2>/dev/null || date +%s))" | gzip -9n >$(DEB_STAGE)/doc/changelog.gz
	DEB_VERSION=$(DEB_VERSION) $(GO) tool nfpm package --config packaging/nfpm.yaml --packager deb --target coconut_$(DEB_VERSION)_amd64.deb

# The fresh-machine test (slow, about a minute with the chroot cached in
# /var/cache/coconut-fresh): the .deb in a minimal bookworm made by
# mmdebstrap, coconut init --yes, the nosy reviewer's deny, remove, purge.
test-slow: deb
	./scripts/fresh-machine.sh coconut_$(DEB_VERSION)_amd64.deb
