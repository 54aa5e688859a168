#!/usr/bin/env bash
# Builds the containerd 2.x releases and the crictl that tests/engines/
# containerd2.bats drives, from the Go module proxy at pinned versions, with
# `go install pkg@version` (their go.mod files have no replace directives, so
# the module-aware install builds exactly the released dependency set):
#
#   $ENGINES_PREFIX/containerd-<v>/{containerd,containerd-shim-runc-v2}
#   $ENGINES_PREFIX/crictl-<v>/crictl
#
# ENGINES_PREFIX defaults to /usr/local/libexec/runcr-engines: one directory
# per version, off PATH, so they never shadow Debian's containerd 1.6
# (/usr/bin), which tests/engines/containerd.bats uses. containerd finds its
# shim next to its own executable, so nothing needs to be on PATH.
#
# Idempotent: a binary whose --version already names its pinned version is
# not rebuilt. Built with CGO_ENABLED=0 (as containerd's release shim is; for
# containerd itself this only drops the btrfs snapshotter, which needs cgo
# and is not used here), -trimpath and -ldflags '-s -w'.
#
# Cold (empty Go module and build caches, 2 cores) measured on 2026-12-05:
# containerd 2.4.2 117 s (including the module downloads), its shim 2 s,
# containerd 2.3.7 72 s, its shim 2 s, crictl 1.37.0 38 s: 3 min 51 s in all,
# 0.6 GB of module cache. A second run does nothing (0.1 s).
# CONTAINERD2_VERSIONS= and CRICTL_VERSION= (empty) skip them.
set -euo pipefail
export PATH=/usr/local/go/bin:$HOME/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

SCRIPT_NAME=install-containerd2
# shellcheck source=tests/setup/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ENGINES_PREFIX=${ENGINES_PREFIX:-/usr/local/libexec/runcr-engines}
CONTAINERD2_VERSIONS=${CONTAINERD2_VERSIONS-2.4.2 2.3.7}
CRICTL_VERSION=${CRICTL_VERSION-1.37.0}

command -v go >/dev/null || {
	log "needs go (/usr/local/go/bin)"
	exit 1
}

# reports BINARY VERSION-FLAG WANT: BINARY exists and its version output
# contains WANT. (Captured, not piped into grep -q: under pipefail an early
# grep exit can fail the pipeline with SIGPIPE.)
reports() {
	local out
	[ -x "$1" ] || return 1
	out=$("$1" "$2" 2>/dev/null) || true
	[[ $out == *"$3"* ]]
}

# goinstall DIR WANT PKG@VERSION TAGS LDFLAGS: go install into DIR unless
# DIR's binary already reports WANT.
goinstall() {
	local dir=$1 want=$2 pkg=$3 tags=$4 ldflags=$5 bin vflag=--version
	bin=$dir/$(basename "${pkg%@*}")
	[[ $bin == */containerd-shim-* ]] && vflag=-v
	reports "$bin" "$vflag" "$want" && return 0
	mkdir -p "$dir"
	log "building $pkg into $dir"
	local t0=$SECONDS
	CGO_ENABLED=0 GOBIN=$dir GOFLAGS="-trimpath -buildvcs=false" \
		go install -tags "$tags" -ldflags "-s -w $ldflags" "$pkg"
	reports "$bin" "$vflag" "$want" || {
		log "$bin does not report $want after the build"
		return 1
	}
	log "built $(basename "$bin") in $((SECONDS - t0)) s"
}

for v in $CONTAINERD2_VERSIONS; do
	d=$ENGINES_PREFIX/containerd-$v
	x="-X github.com/containerd/containerd/v2/version.Version=v$v"
	# containerd's Makefile tags: urfave_cli_no_docs everywhere, no_grpc for
	# the shim; osusergo netgo as its static builds use.
	goinstall "$d" "v$v" "github.com/containerd/containerd/v2/cmd/containerd@v$v" \
		"urfave_cli_no_docs osusergo netgo" "$x"
	goinstall "$d" "v$v" "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@v$v" \
		"urfave_cli_no_docs osusergo netgo no_grpc" "$x"
	log "containerd: $("$d/containerd" --version)"
done

if [ -n "$CRICTL_VERSION" ]; then
	d=$ENGINES_PREFIX/crictl-$CRICTL_VERSION
	goinstall "$d" "$CRICTL_VERSION" "sigs.k8s.io/cri-tools/cmd/crictl@v$CRICTL_VERSION" "" \
		"-X sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL_VERSION"
	log "crictl: $("$d/crictl" --version)"
fi
