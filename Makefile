# Coconut: `sudo make demo` runs the dream team; `sudo make test` runs the tests.
PREFIX  ?= /usr/local
GO      ?= go
BIN     := bin

.PHONY: build install demo test check generate clean vmtest vmbench

build:
	CGO_ENABLED=0 $(GO) build -o $(BIN)/ ./cmd/coconut ./cmd/coconutd ./cmd/coconut-tail ./cmd/coconut-trampoline ./cmd/dream-agent ./cmd/coconut-burn ./cmd/coconut-enforce-probe

install: build
	install -d $(PREFIX)/bin $(PREFIX)/libexec/coconut $(PREFIX)/share/coconut/examples/dream-team
	install -m 0755 $(BIN)/coconut $(BIN)/coconutd $(BIN)/coconut-tail $(PREFIX)/bin/
	install -m 0755 $(BIN)/dream-agent $(BIN)/coconut-trampoline $(BIN)/coconut-burn $(BIN)/coconut-enforce-probe $(PREFIX)/libexec/coconut/
	install -m 0644 examples/dream-team/dream-team.yaml $(PREFIX)/share/coconut/examples/dream-team/
	install -d $(PREFIX)/lib/systemd/system && install -m 0644 packaging/coconutd.service $(PREFIX)/lib/systemd/system/

demo: install
	./scripts/demo.sh

# Tests need root (real cgroups, real users, real processes).
test:
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 20m ./...

clean:
	rm -rf $(BIN)

# bpf-lsm backend inside qemu guests booting Debian's own kernels (bookworm
# 6.1, trixie 6.12) with bpf in lsm=: this host refuses BPF LSM trampolines.
vmtest:
	bash scripts/vmtest-kernels.sh
	COCONUT_VMTEST=1 $(GO) test -count=1 -v -timeout 10m -run 'TestVM$$' ./internal/vmtest/

# open+close ratios and the revoke race inside the same guests; prints a
# table and writes bin/vmbench.json (COCONUT_VMBENCH_JSON to move it).
vmbench:
	bash scripts/vmtest-kernels.sh
	COCONUT_VMBENCH=1 $(GO) test -count=1 -v -timeout 15m -run 'TestVMBench$$' ./internal/vmtest/
