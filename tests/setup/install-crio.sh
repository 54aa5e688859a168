#!/usr/bin/env bash
# Builds the CRI-O that tests/engines/crio.bats drives, and crictl, from the
# Go module proxy at pinned versions:
#
#   $ENGINES_PREFIX/crio-v<v>/{crio,pinns}
#   $ENGINES_PREFIX/crictl-<v>/crictl
#
# CRI-O v1.34.0 is the release the module proxy serves; `go install
# github.com/cri-o/cri-o/cmd/crio@v1.34.0` fails (its go.mod has replace
# directives), so the module is downloaded with `go mod download`, copied to
# a temp build dir (the module cache is read-only) and built there with the
# tags CRI-O's Makefile uses minus the ones needing C libraries we do not
# have (btrfs, devicemapper, gpgme, ostree). pinns is C, built with its own
# Makefile. conmon is Debian's (installed with Podman).
#
# ENGINES_PREFIX defaults to /usr/local/libexec/runcr-engines: one directory
# per version, off PATH. crictl is built the same way and into the same
# directory as tests/setup/install-containerd2.sh does (whichever runs
# first builds it). Idempotent: a binary reporting its pinned version is not
# rebuilt. CRIO_VERSION= or CRICTL_VERSION= (empty) skip them.
#
# Cold (empty Go build cache, cri-o not yet in the module cache, 2 cores),
# measured 2026-12-06: crio 229 s including the module download, pinns 1 s;
# 0.7 GB of build cache. A second run does nothing.
set -euo pipefail
export PATH=/usr/local/go/bin:$HOME/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

SCRIPT_NAME=install-crio
# shellcheck source=tests/setup/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ENGINES_PREFIX=${ENGINES_PREFIX:-/usr/local/libexec/runcr-engines}
CRIO_VERSION=${CRIO_VERSION-1.34.0}
CRICTL_VERSION=${CRICTL_VERSION-1.37.0}

command -v go >/dev/null || {
	log "needs go (/usr/local/go/bin)"
	exit 1
}

# reports BINARY WANT ARGS...: BINARY exists and its output for ARGS
# contains WANT. (Captured, not piped into grep -q, because of pipefail.)
reports() {
	local bin=$1 want=$2 out
	shift 2
	[ -x "$bin" ] || return 1
	out=$("$bin" "$@" 2>&1) || true
	[[ $out == *"$want"* ]]
}

if [ -n "$CRIO_VERSION" ]; then
	d=$ENGINES_PREFIX/crio-v$CRIO_VERSION
	if reports "$d/crio" "$CRIO_VERSION" version && [ -x "$d/pinns" ]; then
		:
	else
		t0=$SECONDS
		log "downloading github.com/cri-o/cri-o@v$CRIO_VERSION"
		moddir=$(go mod download -json "github.com/cri-o/cri-o@v$CRIO_VERSION" | jq -r .Dir)
		[ -d "$moddir" ] || {
			log "go mod download gave no module dir"
			exit 1
		}
		build=$(mktemp -d /tmp/crio-build.XXXXXX)
		trap 'rm -rf "$build"' EXIT
		cp -r "$moddir/." "$build/"
		chmod -R u+w "$build"
		mkdir -p "$d"
		log "building crio in $build"
		pkg=github.com/cri-o/cri-o/internal/version
		(cd "$build" && CGO_ENABLED=1 go build -trimpath -buildvcs=false \
			-tags "containers_image_openpgp containers_image_ostree_stub exclude_graphdriver_btrfs exclude_graphdriver_devicemapper seccomp" \
			-ldflags "-s -w -X $pkg.buildDate=unknown -X $pkg.gitCommit=v$CRIO_VERSION -X $pkg.gitTreeState=clean" \
			-o "$d/crio.new" ./cmd/crio)
		log "built crio in $((SECONDS - t0)) s (with the module download)"
		t1=$SECONDS
		make -C "$build/pinns" >/dev/null
		install -m 0755 "$build/bin/pinns" "$d/pinns" 2>/dev/null || install -m 0755 "$build/pinns/pinns" "$d/pinns"
		mv "$d/crio.new" "$d/crio"
		log "built pinns in $((SECONDS - t1)) s"
		rm -rf "$build"
		trap - EXIT
	fi
	log "crio: $("$d/crio" version 2>/dev/null | grep -m1 -i '^Version')"
fi

if [ -n "$CRICTL_VERSION" ]; then
	d=$ENGINES_PREFIX/crictl-$CRICTL_VERSION
	if ! reports "$d/crictl" "$CRICTL_VERSION" --version; then
		t0=$SECONDS
		mkdir -p "$d"
		log "building crictl $CRICTL_VERSION into $d"
		CGO_ENABLED=0 GOBIN=$d GOFLAGS="-trimpath -buildvcs=false" go install -ldflags \
			"-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL_VERSION" \
			"sigs.k8s.io/cri-tools/cmd/crictl@v$CRICTL_VERSION"
		log "built crictl in $((SECONDS - t0)) s"
	fi
	log "crictl: $("$d/crictl" --version)"
fi
