#!/usr/bin/env bash
# Builds the kubelet that tests/engines/kubelet.bats runs standalone over the
# private CRI-O of crio.bats:
#
#   $ENGINES_PREFIX/kubelet-v<v>/kubelet
#
# k8s.io/kubernetes is not meant to be used as a module: its go.mod replaces
# every k8s.io/* staging module with ./staging/src/..., which the module zip
# does not hold, and it ships a go.work and vendor/. So: `go mod download` of
# the release, copied to a temp build dir (the module cache is read-only),
# go.work and vendor/ dropped, each ./staging replace swapped for the
# published k8s.io/* module of the same release (v0.<minor>.<patch>), then
# `GOWORK=off go build ./cmd/kubelet`.
#
# ENGINES_PREFIX defaults to /usr/local/libexec/runcr-engines. Idempotent: a
# kubelet reporting its pinned version is not rebuilt. KUBELET_VERSION=
# (empty) skips it.
#
# Cold (empty Go build cache, 2 cores, beside a test run), measured
# 2026-12-06: 225 s including the module downloads. A second run does
# nothing.
set -euo pipefail
export PATH=/usr/local/go/bin:$HOME/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

SCRIPT_NAME=install-kubelet
# shellcheck source=tests/setup/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ENGINES_PREFIX=${ENGINES_PREFIX:-/usr/local/libexec/runcr-engines}
KUBELET_VERSION=${KUBELET_VERSION-1.34.4}
[ -n "$KUBELET_VERSION" ] || exit 0

d=$ENGINES_PREFIX/kubelet-v$KUBELET_VERSION
out=$("$d/kubelet" --version 2>/dev/null || true)
if [[ $out == *"v$KUBELET_VERSION"* ]]; then
	log "kubelet: $out"
	exit 0
fi

t0=$SECONDS
moddir=$(go mod download -json "k8s.io/kubernetes@v$KUBELET_VERSION" | jq -r .Dir)
[ -d "$moddir" ] || {
	log "go mod download gave no module dir"
	exit 1
}
build=$(mktemp -d /tmp/kubelet-build.XXXXXX)
trap 'rm -rf "$build"' EXIT
cp -r "$moddir/." "$build/"
chmod -R u+w "$build"
cd "$build"
rm -rf go.work go.work.sum vendor
staging_v=v0.${KUBELET_VERSION#*.}
args=()
while read -r m; do
	args+=("-dropreplace=$m" "-require=$m@$staging_v")
done < <(go mod edit -json | jq -r '.Replace[] | select(.New.Path | startswith("./staging/")) | .Old.Path')
go mod edit "${args[@]}"
log "building kubelet v$KUBELET_VERSION in $build (staging modules at $staging_v)"
pkg=k8s.io/component-base/version
mkdir -p "$d"
GOWORK=off GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -buildvcs=false \
	-ldflags "-s -w -X $pkg.gitVersion=v$KUBELET_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=${KUBELET_VERSION#1.} -X $pkg.gitTreeState=clean" \
	-o "$d/kubelet.new" ./cmd/kubelet
mv "$d/kubelet.new" "$d/kubelet"
log "built kubelet in $((SECONDS - t0)) s (with the module downloads)"
log "kubelet: $("$d/kubelet" --version)"
