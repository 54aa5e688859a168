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
	# used by the tests themselves
	socat jq iptables iproute2 busybox-static bats
)
mapfile -t missing < <(missing_packages "${PACKAGES[@]}")
if [ ${#missing[@]} -gt 0 ]; then
	log "installing Debian packages: ${missing[*]}"
	apt-get update -qq
	# --no-install-recommends: no buildah/fuse-overlayfs/slirp4netns (rootless
	# only), no dbus session; policy-rc.d keeps the postinst from starting
	# containerd (the tests run their own instance).
	policy=/usr/sbin/policy-rc.d
	created_policy=
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy"
		chmod 0755 "$policy"
		created_policy=1
	fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	[ -n "$created_policy" ] && rm -f "$policy"
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

# containerd 2.4 and 2.3 and crictl for tests/engines/containerd2.bats: built
# from the Go module proxy at pinned versions into version directories off
# PATH (see the script).
bash "$(dirname "${BASH_SOURCE[0]}")/install-containerd2.sh"
