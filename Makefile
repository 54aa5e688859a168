# runcr: a runc-compatible OCI runtime whose checkpoint/restore are its own.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
GO ?= go
BATS ?= bats
PREFIX ?= /usr/local
export PATH := /usr/local/go/bin:$(HOME)/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$(PATH)

BUILD_DIR := tests/.build
ROOTFS := $(BUILD_DIR)/rootfs
VERSION := $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

.PHONY: runcr all deps rootfs test lint golangci-lint unit fuzz integration engines bench bench-profile demo man install clean upstream-checkpoint-bats upstream-checkpoint-bats-runc soak soak-short test-large

all: runcr

# Always handed to go build, which rebuilds only what changed: file times
# after a merge or checkout can make a stale binary look up to date.
runcr:
	$(GO) build -trimpath -ldflags "-X main.version=$(VERSION)" -o $@ .

# Installs Debian packages, CRIU >= 4, runc v1.4.4 (pass-through) and runc
# v1.5.3 (/usr/local/libexec/runcr) when missing (idempotent).
deps:
	bash tests/setup/install-deps.sh

rootfs: deps
	bash tests/setup/make-rootfs.sh $(ROOTFS)

# Static checks, no root needed: go vet, golangci-lint (.golangci.yml) on
# every Go package and shellcheck (.shellcheckrc) on every shell script and
# bats file. All three run; the target fails if any found something.
# golangci-lint is built at GOLANGCI_LINT_VERSION into LINT_BIN (off PATH)
# when missing or of another version: ~2 min cold on two cores, then a
# version check. shellcheck is Debian's, from make deps.
GOLANGCI_LINT_VERSION ?= v2.15.0
LINT_BIN ?= $(CURDIR)/$(BUILD_DIR)/bin
GOLANGCI_LINT := $(LINT_BIN)/golangci-lint
SHELL_SCRIPTS = $(shell find .ci tests -path tests/.build -prune -o -type f \
	\( -name '*.sh' -o -name '*.bash' -o -name '*.bats' -o -path .ci/run \) -print | LC_ALL=C sort)

lint: golangci-lint
	@command -v shellcheck >/dev/null || { echo "lint: no shellcheck: make deps (as root), or apt-get install shellcheck" >&2; exit 1; }
	status=0; \
	$(GO) vet ./... || status=1; \
	$(GOLANGCI_LINT) run ./... || status=1; \
	shellcheck -x $(SHELL_SCRIPTS) || status=1; \
	exit $$status

golangci-lint:
	@if [ "$$($(GOLANGCI_LINT) version --short 2>/dev/null)" != "$(GOLANGCI_LINT_VERSION:v%=%)" ]; then \
		echo "installing golangci-lint $(GOLANGCI_LINT_VERSION) into $(LINT_BIN)"; \
		GOBIN=$(LINT_BIN) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION); \
	fi

# As root with CRIU, TestLibraryLeavesHostAlone checkpoints and restores a
# container of the busybox rootfs through the library.
unit: rootfs
	@mkdir -p $(BUILD_DIR)
	$(GO) build -o /dev/null ./examples/...
	RUNCR_TEST_ROOTFS=$(CURDIR)/$(ROOTFS) $(GO) test -v ./... 2>&1 | tee $(BUILD_DIR)/unit.log | grep -E '^(--- FAIL|FAIL|ok|PASS)|panic' || true
	@! grep -qE '^(--- FAIL|FAIL)' $(BUILD_DIR)/unit.log

integration: runcr rootfs
	@mkdir -p $(BUILD_DIR)
	RUNCR=$(CURDIR)/runcr ROOTFS=$(CURDIR)/$(ROOTFS) $(BATS) --tap --timing tests/integration | tee $(BUILD_DIR)/integration.tap

# Short coverage-guided fuzz runs (FUZZTIME each). A count, not a duration:
# a duration-bound run can fail with "context deadline exceeded" when the
# deadline falls while a worker is minimizing an input on a busy machine.
FUZZTIME ?= 50000x
fuzz:
	for p in $$($(GO) list ./libcheckpoint/...); do \
		for f in $$($(GO) test -list 'Fuzz.*' $$p | grep ^Fuzz); do \
			$(GO) test -run XXX -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) $$p || exit 1; \
		done; \
	done

# runcr vs runc v1.4.4, side by side: medians and ratios (BENCHMARKS.md).
bench: deps runcr rootfs
	RUNCR=$(CURDIR)/runcr ROOTFS=$(CURDIR)/$(ROOTFS) bash tests/bench/run.sh

# Where the fixed cost of a small checkpoint/restore goes (perf timelines).
bench-profile: deps runcr rootfs
	RUNCR=$(CURDIR)/runcr ROOTFS=$(CURDIR)/$(ROOTFS) bash tests/bench/profile.sh

# Debian's Podman, containerd and Docker, CRI-O v1.34.0 and kubelet v1.34.4
# (built by install-engines.sh, ~8 min cold) and CRI-O's argv driving runcr.
engines: runcr rootfs
	@mkdir -p $(BUILD_DIR)
	bash tests/setup/install-engines.sh
	RUNCR=$(CURDIR)/runcr ROOTFS=$(CURDIR)/$(ROOTFS) $(BATS) --tap --timing tests/engines | tee $(BUILD_DIR)/engines.tap

# runc's own checkpoint.bats, run from the Go module cache against runcr:
# the v1.4 line's suite (v1.4.4) and the current release's (v1.5.3), one
# after the other, each with its own summary line, runcr passing its other
# commands (run, exec, state, ...) to the runc of that version (make deps
# installs both). upstream.tap gets both TAP streams, which
# tests/summarize.sh counts; every suite runs even if an earlier one
# failed. upstream-checkpoint-bats-runc runs the same suites against those
# runcs themselves: the side-by-side reference (not part of make test).
# UPSTREAM_SUITES: VERSION:RUNC pairs.
UPSTREAM_SUITES ?= v1.4.4:/usr/local/sbin/runc v1.5.3:/usr/local/libexec/runcr/runc-v1.5.3
upstream-checkpoint-bats: deps runcr
	@mkdir -p $(BUILD_DIR)
	rm -f $(BUILD_DIR)/upstream.tap
	status=0; \
	for s in $(UPSTREAM_SUITES); do \
		RUNC=$(CURDIR)/runcr RUNCR_RUNC=$${s#*:} RUNC_UPSTREAM_VERSION=$${s%%:*} \
			bash tests/upstream/run-runc-checkpoint-bats.sh | tee -a $(BUILD_DIR)/upstream.tap || status=1; \
	done; \
	exit $$status

upstream-checkpoint-bats-runc: deps
	@mkdir -p $(BUILD_DIR)
	rm -f $(BUILD_DIR)/upstream-runc.tap
	status=0; \
	for s in $(UPSTREAM_SUITES); do \
		RUNC=$${s#*:} RUNC_UPSTREAM_VERSION=$${s%%:*} \
			bash tests/upstream/run-runc-checkpoint-bats.sh | tee -a $(BUILD_DIR)/upstream-runc.tap || status=1; \
	done; \
	exit $$status

# Soak (tests/soak): checkpoint/restore cycles of one container with a
# memory checker and a live TCP connection; no failure, no leak. `make
# test` runs SOAK_SHORT_CYCLES of them, `make soak` SOAK_CYCLES.
SOAK_CYCLES ?= 200
SOAK_SHORT_CYCLES ?= 10
soak-short: runcr rootfs
	@mkdir -p $(BUILD_DIR)
	SOAK_CYCLES=$(SOAK_SHORT_CYCLES) RUNCR=$(CURDIR)/runcr ROOTFS=$(CURDIR)/$(ROOTFS) $(BATS) --tap --timing tests/soak | tee $(BUILD_DIR)/soak-short.tap

# The interruption tests of safety.bats with a 1 GiB container (make test
# runs them at 300 MiB).
test-large: runcr rootfs
	@mkdir -p $(BUILD_DIR)
	RUNCR_TEST_HOG_MIB=1024 RUNCR=$(CURDIR)/runcr ROOTFS=$(CURDIR)/$(ROOTFS) $(BATS) --tap --timing \
		-f 'in the middle of a dump|once CRIU has dumped' tests/integration/safety.bats | tee $(BUILD_DIR)/large.tap

soak: deps runcr rootfs
	rm -f $(BUILD_DIR)/large.tap $(BUILD_DIR)/soak.tap
	status=0; \
	$(MAKE) test-large || status=1; \
	SOAK_CYCLES=$(SOAK_CYCLES) RUNCR=$(CURDIR)/runcr ROOTFS=$(CURDIR)/$(ROOTFS) $(BATS) --tap --timing tests/soak | tee $(BUILD_DIR)/soak.tap || status=1; \
	bash tests/summarize.sh /dev/null $(BUILD_DIR)/large.tap $(BUILD_DIR)/soak.tap; \
	exit $$status

# make lint first, stopping at its findings; then unit tests, the
# integration suite and runc's checkpoint.bats (v1.4.4's and v1.5.3's):
# every part runs even if an earlier one failed, then one summary line.
test: deps
	$(MAKE) lint
	rm -f $(BUILD_DIR)/unit.log $(BUILD_DIR)/*.tap
	status=0; \
	$(MAKE) unit || status=1; \
	$(MAKE) fuzz || status=1; \
	$(MAKE) integration || status=1; \
	$(MAKE) engines || status=1; \
	$(MAKE) upstream-checkpoint-bats || status=1; \
	$(MAKE) soak-short || status=1; \
	bash tests/summarize.sh $(BUILD_DIR)/unit.log $(BUILD_DIR)/integration.tap $(BUILD_DIR)/engines.tap $(BUILD_DIR)/upstream.tap $(BUILD_DIR)/soak-short.tap; \
	exit $$status

demo: deps runcr rootfs
	RUNCR=$(CURDIR)/runcr ROOTFS=$(CURDIR)/$(ROOTFS) bash tests/demo.sh

man:
	for f in man/*.8.md; do go-md2man -in $$f -out $${f%.md}; done

install: runcr
	install -D -m 0755 runcr $(DESTDIR)$(PREFIX)/sbin/runcr

# runcr answers to lxc-checkpoint(1)'s command line under that name
# (runcr-lxc-checkpoint(8)); opt-in, as it shadows LXC's own.
.PHONY: install-lxc-checkpoint
install-lxc-checkpoint: install
	ln -sf runcr $(DESTDIR)$(PREFIX)/sbin/lxc-checkpoint

clean:
	rm -rf runcr $(BUILD_DIR) man/*.8
