#!/usr/bin/env bash
# Installs the container engines runcr's engine tests drive (tests/engines):
# Debian bookworm's Podman (with conmon, netavark and aardvark-dns) and
# containerd (which ships ctr), then containerd 2.4/2.3 and crictl built with
# go install (install-containerd2.sh). Run as root, after install-deps.sh. Idempotent:
# packages already installed are not touched, and nothing is started or
# enabled: the tests start containerd themselves with a private config, and
# Podman needs no daemon.
#
# Both packages depend on Debian's runc (1.1.5), which lands in /usr/sbin/runc.
# runcr passes non-checkpoint commands to the first runc on PATH (or
# $RUNCR_RUNC): keep /usr/local/sbin (runc v1.4.4) before /usr/sbin, as
# Debian's root PATH does; the engine tests set RUNCR_RUNC explicitly.
set -euo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

SCRIPT_NAME=install-engines
# shellcheck source=tests/setup/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_root "it installs Debian packages"

PACKAGES=(
	podman conmon netavark aardvark-dns catatonit
	containerd
	# Docker 20.10 (dockerd, docker CLI); tests/engines/docker.bats starts
	# its own dockerd with a private data root, exec root and containerd
	docker.io
	# imports the test image into CRI-O's private storage (crio.bats), and
	# builds the checkpoint image the kubelet restores (kubelet.bats)
	skopeo buildah
	# used by the tests themselves
	socat jq iptables iproute2 busybox-static bats
)
mapfile -t missing < <(missing_packages "${PACKAGES[@]}")
if [ ${#missing[@]} -gt 0 ]; then
	log "installing Debian packages: ${missing[*]}"
	apt-get update -qq
	# --no-install-recommends: no fuse-overlayfs/slirp4netns (rootless
	# only), no dbus session; policy-rc.d keeps the postinst from starting
	# containerd or docker (the tests run their own instances).
	policy=/usr/sbin/policy-rc.d
	created_policy=
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy"
		chmod 0755 "$policy"
		created_policy=1
	fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	[ -n "$created_policy" ] && rm -f "$policy"
	# docker.io's postinst enables docker.service/docker.socket even when
	# policy-rc.d stops it from starting them; undo that (works offline).
	if [[ " ${missing[*]} " == *" docker.io "* ]] && command -v systemctl >/dev/null; then
		systemctl disable docker.service docker.socket >/dev/null 2>&1 || true
	fi
fi

# Podman reads the network backend and runtimes from containers.conf; the
# tests pass --runtime explicitly, so no system config is written here.
# Podman's default policy.json (from golang-github-containers-image) must exist
# for `podman import`.
[ -f /etc/containers/policy.json ] || {
	mkdir -p /etc/containers
	cat >/etc/containers/policy.json <<'JSON'
{ "default": [ { "type": "insecureAcceptAnything" } ] }
JSON
}

log "podman: $(podman --version)"
log "conmon: $(conmon --version | head -1)"
log "containerd: $(containerd --version)"
log "ctr: $(ctr --version)"
log "docker: $(/usr/bin/docker --version), dockerd: $(/usr/sbin/dockerd --version)"
log "skopeo: $(skopeo --version), buildah: $(buildah --version)"

# CRI-O v1.34.0 (crio, pinns) and crictl for tests/engines/crio.bats: built
# from the Go module proxy at pinned versions into version directories off
# PATH (see the script).
bash "$(dirname "${BASH_SOURCE[0]}")/install-crio.sh"
# kubelet v1.34.4 for tests/engines/kubelet.bats (see the script).
bash "$(dirname "${BASH_SOURCE[0]}")/install-kubelet.sh"

# containerd 2.4 and 2.3 and crictl for tests/engines/containerd2.bats: built
# from the Go module proxy at pinned versions into version directories off
# PATH (see the script).
bash "$(dirname "${BASH_SOURCE[0]}")/install-containerd2.sh"
