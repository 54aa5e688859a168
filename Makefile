# runcr: a runc-compatible OCI runtime whose checkpoint/restore are its own.
GO ?= go
BATS ?= bats
PREFIX ?= /usr/local
export PATH := /usr/local/go/bin:$(HOME)/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$(PATH)

BUILD_DIR := tests/.build
ROOTFS := $(BUILD_DIR)/rootfs
GO_SRC := $(shell find . -name '*.go' -not -path './tests/.build/*') go.mod go.sum
VERSION := $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

.PHONY: all deps rootfs test unit integration demo man install clean upstream-checkpoint-bats

all: runcr

runcr: $(GO_SRC)
	$(GO) build -trimpath -ldflags "-X main.version=$(VERSION)" -o $@ .

# Installs Debian packages, CRIU >= 4 and runc v1.4.3 when missing (idempotent).
deps:
	bash tests/setup/install-deps.sh

rootfs: deps
	bash tests/setup/make-rootfs.sh $(ROOTFS)

unit:
	$(GO) test ./...

integration: runcr rootfs
	RUNCR=$(CURDIR)/runcr ROOTFS=$(CURDIR)/$(ROOTFS) $(BATS) --timing tests/integration

test: deps
	$(MAKE) unit
	$(MAKE) integration

demo: deps runcr rootfs
	RUNCR=$(CURDIR)/runcr ROOTFS=$(CURDIR)/$(ROOTFS) bash tests/demo.sh

man:
	for f in man/*.8.md; do go-md2man -in $$f -out $${f%.md}; done

install: runcr
	install -D -m 0755 runcr $(DESTDIR)$(PREFIX)/sbin/runcr

clean:
	rm -rf runcr $(BUILD_DIR) man/*.8
