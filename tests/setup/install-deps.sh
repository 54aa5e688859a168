#!/usr/bin/env bash
# Installs everything runcr's demo and tests need on a Debian bookworm host,
# idempotently: Debian packages, a working CRIU (>= 4.0), runc v1.4.4 with
# seccomp (pass-through, /usr/local/sbin/runc), runc v1.5.3 with seccomp
# beside it (/usr/local/libexec/runcr/runc-v1.5.3: the reference runtime of
# the v1.5 side of `make upstream-checkpoint-bats` and the other runc of the
# cross-version interop tests), and the Go tools the build uses. Run as root. Safe to run again:
# each step checks first and does nothing when its result is already there.
set -euo pipefail

RUNC_VERSION=${RUNC_VERSION:-v1.4.4}
# The current release line, installed to a versioned path only: pass-through
# stays on RUNC_VERSION.
RUNC_NEXT_VERSION=${RUNC_NEXT_VERSION:-v1.5.3}
RUNC_LIBEXEC=${RUNC_LIBEXEC:-/usr/local/libexec/runcr}
# CRIU 4.2: 4.1 can't dump any process with an inet socket on kernels >=
# 6.16 (getsockopt SO_PASSCRED now fails there), and 4.2 also notices by
# itself when hardware breakpoints don't fire. Debian has it in forky/sid.
CRIU_VERSION=${CRIU_VERSION:-4.2.1}
CRIU_MIN_VERSION=${CRIU_MIN_VERSION:-40200}
CRIU_ORIG_SHA256=${CRIU_ORIG_SHA256:-29ec0ee09e296479fe7048c80980e8ef1d0684d0b0204c2b101dfea19f6725b9}
CRIU_SUITES=${CRIU_SUITES:-forky sid}
CRIU_PREFIX=${CRIU_PREFIX:-/usr/local}
export PATH=/usr/local/go/bin:$HOME/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

SCRIPT_NAME=install-deps
# shellcheck source=tests/setup/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_root "it installs Debian packages and binaries into /usr/local"

# Debian packages: runtime tools for tests, shellcheck for make lint, plus
# CRIU's and runc's build deps.
PACKAGES=(
	iptables busybox-static bats jq gawk iproute2 procps psmisc util-linux
	libseccomp-dev pkg-config build-essential git xz-utils ca-certificates
	socat go-md2man hyperfine time linux-perf zstd shellcheck
	# runcr migrate over ssh:// (migrate.bats runs its own sshd)
	openssh-server openssh-client
	# CRIU build dependencies (bookworm's -dev packages)
	libprotobuf-dev libprotobuf-c-dev protobuf-c-compiler protobuf-compiler
	python3-protobuf libnl-3-dev libnl-route-3-dev libcap-dev libnet1-dev
	libbsd-dev libaio-dev libgnutls28-dev uuid-dev libnftables-dev
)
mapfile -t missing < <(missing_packages "${PACKAGES[@]}")
if [ ${#missing[@]} -gt 0 ]; then
	log "installing Debian packages: ${missing[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# CRIU: bookworm's 3.17 fails on this kernel ("Unexpected rt vDSO area bounds"),
# so build a newer one from Debian's source tarball unless a working criu
# (>= CRIU_MIN_VERSION, `criu check` passes) is already on PATH.
criu_ok() {
	command -v criu >/dev/null || return 1
	local v major minor sub
	v=$(criu --version 2>/dev/null | awk '/^Version:/ {print $2}')
	IFS=. read -r major minor sub <<<"$v"
	[ $((${major:-0} * 10000 + ${minor:-0} * 100 + ${sub:-0})) -ge "$CRIU_MIN_VERSION" ] || return 1
	criu check >/dev/null 2>&1
}

# deb822 or one-line sources: print the URIs that serve Debian's main suites.
debian_uris() (
	set +o pipefail
	{
		cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '/^URIs:/ {for (i=2;i<=NF;i++) print $i}'
		cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
			awk '/^deb / {for (i=2;i<=NF;i++) if ($i ~ /^[a-z]+:\/\//) {print $i; break}}'
	} | { grep -v -- '-security' || true; } | { grep '/debian/\?$' || true; } | sort -u
)

build_criu() {
	local work tarball
	work=$(mktemp -d /tmp/runcr-criu.XXXXXX)
	tarball="criu_${CRIU_VERSION}.orig.tar.xz"
	local uris
	uris=$(debian_uris)
	if [ -z "$uris" ]; then
		log "no Debian package source found in /etc/apt to fetch CRIU's source from"
		return 1
	fi
	# A private deb-src list and package lists: the machine's own apt
	# configuration is left as it was. apt may 404 on the .dsc or Debian
	# patches; the upstream tarball is all the build needs.
	local suite aptopts
	for suite in $CRIU_SUITES; do
		rm -rf "${work:?}/lists" "${work:?}/etc"
		mkdir -p "$work/lists/partial" "$work/etc"
		for u in $uris; do
			echo "deb-src $u $suite main"
		done >"$work/etc/src.list"
		aptopts=(
			-o "Dir::Etc::SourceList=$work/etc/src.list"
			-o "Dir::Etc::SourceParts=$work/etc/nonexistent.d"
			-o "Dir::State::Lists=$work/lists"
			-o "APT::Get::List-Cleanup=0"
		)
		log "fetching CRIU ${CRIU_VERSION} source from Debian $suite"
		apt-get "${aptopts[@]}" update -qq >/dev/null 2>&1 || true
		# The Debian revision doesn't matter: only the upstream tarball is used.
		local rev
		rev=$(apt-cache "${aptopts[@]}" showsrc criu 2>/dev/null |
			awk -v v="$CRIU_VERSION" '$1 == "Version:" && index($2, v "-") == 1 {print $2; exit}')
		if [ -n "$rev" ]; then
			(cd "$work" && apt-get "${aptopts[@]}" source --download-only "criu=$rev" >/dev/null 2>&1) || true
		fi
		[ -f "$work/$tarball" ] && break
	done
	if [ ! -f "$work/$tarball" ]; then
		log "could not download $tarball from Debian suites: $CRIU_SUITES"
		return 1
	fi
	echo "$CRIU_ORIG_SHA256  $work/$tarball" | sha256sum -c --quiet - || {
		log "$tarball: checksum mismatch"
		return 1
	}
	tar -C "$work" -xf "$work/$tarball"
	log "building CRIU ${CRIU_VERSION} (one to three minutes)"
	make -C "$work/criu-${CRIU_VERSION}" -j"$(nproc)" criu >"$work/build.log" 2>&1 || {
		tail -20 "$work/build.log" >&2
		return 1
	}
	install -m 0755 "$work/criu-${CRIU_VERSION}/criu/criu" "$CRIU_PREFIX/sbin/criu"
	rm -rf "$work"
}

if ! criu_ok; then
	build_criu
	hash -r
	criu_ok || {
		log "criu check fails after installing CRIU ${CRIU_VERSION}:"
		criu check || true
		exit 1
	}
fi
log "criu: $(command -v criu) $(criu --version | awk '/^Version:/ {print $2}')"

# runc_ok BINARY VERSION: BINARY is runc VERSION built with seccomp.
# (The output is read whole first: under pipefail, `runc --version | grep -q`
# fails whenever grep exits before runc's later writes, runc dying of SIGPIPE.)
runc_ok() {
	local out
	[ -x "$1" ] && out=$("$1" --version 2>/dev/null) || return 1
	grep -qx "runc version ${2#v}" <<<"$out" && grep -q '^libseccomp: ' <<<"$out"
}
# install_runc VERSION DEST builds runc VERSION with seccomp into DEST.
install_runc() {
	local bin
	bin=$(mktemp -d /tmp/runcr-runc-bin.XXXXXX)
	log "building runc $1 with seccomp"
	GOBIN=$bin go install -tags seccomp "github.com/opencontainers/runc@$1"
	install -D -m 0755 "$bin/runc" "$2"
	rm -rf "$bin"
}

# runc v1.4.4 with seccomp, for pass-through and side-by-side tests.
if ! runc_ok /usr/local/sbin/runc "$RUNC_VERSION"; then
	install_runc "$RUNC_VERSION" /usr/local/sbin/runc
fi
log "runc: $(/usr/local/sbin/runc --version | head -1)"

# runc v1.5.3 with seccomp, beside it.
RUNC_NEXT=$RUNC_LIBEXEC/runc-$RUNC_NEXT_VERSION
if ! runc_ok "$RUNC_NEXT" "$RUNC_NEXT_VERSION"; then
	install_runc "$RUNC_NEXT_VERSION" "$RUNC_NEXT"
fi
log "runc: $RUNC_NEXT: $("$RUNC_NEXT" --version | head -1)"
