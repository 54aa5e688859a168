#!/usr/bin/env bash
# shellcheck disable=SC2317 # (functions run from traps and run_probe)
# Runs runc's OWN tests/integration/checkpoint.bats (from the runc release in
# the Go module cache, v1.4.4 by default) against a runtime binary:
#
#   RUNC=/path/to/runtime bash tests/upstream/run-runc-checkpoint-bats.sh
#
# RUNC defaults to `runc` on PATH. Nothing of runc's is kept in this repo: at
# run time the script
#   1. asks `go mod download -json github.com/opencontainers/runc@VERSION`
#      where runc's source is (downloading it through the Go module proxy
#      if it is not in the module cache yet);
#   2. copies runc's tests/integration/ to a temporary directory under /tmp
#      (the module cache is read-only and the helpers write into testdata/);
#   3. builds the test helper checkpoint.bats needs (tests/cmd/recvtty, used
#      by setup_bundle for --console-socket) with `go build` from the module
#      cache into tests/cmd/_bin/ of that copy, where helpers.bash looks;
#   4. builds the busybox test image offline from Debian's busybox-static
#      (/bin/busybox plus one symlink per applet) and puts it where runc's
#      get-images.sh would download it (testdata/busybox-$GOARCH.tar.xz), so
#      get-images.sh finds it and downloads nothing; get-images.sh also
#      insists on a Debian image that checkpoint.bats never uses, so that
#      path gets the same busybox tarball;
#   5. probes the host, honestly and each time:
#      - CRIU itself: a plain `criu dump` + `criu restore` of a throwaway
#        process. Where that hangs or fails but works with CRIU_FAULT=130
#        (CRIU's FI_NO_BREAKPOINTS: VMs whose x86 hardware breakpoints never
#        fire), CRIU_FAULT=130 is exported for the run (criu inherits it
#        from the runtime) and said so;
#      - the two tests that need more than a plain dump: "checkpoint
#        --pre-dump and restore" needs `criu check --feature mem_dirty_track`
#        (soft-dirty memory tracking), "checkpoint --lazy-pages and restore"
#        needs a working lazy migration, tried for real with CRIU alone.
#        A test whose probe fails is excluded: bats reports it as "ok N
#        <name> # skip excluded on this host: <reason>" (a generated
#        helpers.bash sources runc's helpers.bash, unchanged, and wraps its
#        `requires`, which every test's setup() calls first). On a host
#        where the probe passes, the test runs;
#      - dummy network devices: the tests create dummy0 with `ip link add
#        dummy0 [address MAC mtu N] type dummy` (v1.4's setup() for every
#        test, v1.5's for the netdevice test only, with MAC and MTU given
#        at creation); on a kernel without CONFIG_DUMMY an `ip` wrapper on
#        the tests' PATH makes dummy0 a veth instead, with the same options
#        (and says so);
#      - udev: v1.5's netdevice test runs `udevadm settle` after creating
#        dummy0; on a host without udev (no udevadm) a stand-in on the
#        tests' PATH that settles nothing, there being no udev queue to
#        wait for (and says so);
#   6. runs bats (TAP output), then prints a summary whose last line is
#      "N passed, N failed, N skipped".
#
# Exit status: 0 when every test that was not skipped passed, 1 otherwise
# (2 for a setup problem). Skipped tests (excluded here, or skipped by runc's
# own `requires`) do not fail the run.
#
# Environment:
#   RUNC                      runtime binary to test (default: runc on PATH)
#   RUNCR_RUNC                when RUNC is runcr: the runc it passes every
#                             other command to (runcr's default: the first
#                             runc on PATH); named in the summary
#   RUNC_UPSTREAM_VERSION     runc release whose tests to run (default v1.4.4)
#   UPSTREAM_BATS_NO_EXCLUDE  set to 1 to run every test, probes notwithstanding
#   UPSTREAM_BATS_FILTER      extra regex passed to `bats --filter`
#   UPSTREAM_BATS_KEEP        set to 1 to keep the temporary directory
#   UPSTREAM_BATS_TEST_TIMEOUT  seconds before a hung test fails (default 120)
#   CRIU_FAULT                if set, used as is and the CRIU probe is skipped
#
# Needs: root, bats (>= 1.7), jq, gawk, criu, go, busybox-static, iproute2,
# util-linux, procps, xz-utils.
# The tests themselves touch the host: they add/remove a dummy0 link and
# network namespaces, and one writes /etc/criu/default.conf, which this
# script saves before and puts back after the run.
set -euo pipefail

export PATH=$PATH:/usr/local/go/bin:$HOME/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

RUNC_UPSTREAM_VERSION=${RUNC_UPSTREAM_VERSION:-v1.4.4}
BUSYBOX_BIN=${BUSYBOX_BIN:-/bin/busybox}

log() { printf 'upstream-bats: %s\n' "$*" >&2; }
die() {
	log "$*"
	exit 2
}

[ "$(id -u)" -eq 0 ] || die "must run as root (runc's checkpoint tests require root)"
for tool in bats jq gawk criu go ip tar xz unshare setsid pgrep timeout od; do
	command -v "$tool" >/dev/null || die "missing required tool: $tool"
done
[ -x "$BUSYBOX_BIN" ] || die "missing $BUSYBOX_BIN (Debian package busybox-static)"
# (a dynamically linked busybox would not run in the bare test rootfs)
if head -c 8192 "$BUSYBOX_BIN" | LC_ALL=C grep -qa 'ld-linux'; then
	die "$BUSYBOX_BIN must be statically linked (install busybox-static)"
fi

RUNC=${RUNC:-$(command -v runc || true)}
[ -n "$RUNC" ] || die "RUNC is not set and there is no runc on PATH"
RUNC=$(readlink -f "$RUNC")
[ -x "$RUNC" ] || die "RUNC=$RUNC is not an executable file"
export RUNC

# --- 1. runc's source from the Go module cache -------------------------------
SRC=$(cd /tmp && GOFLAGS="" GOWORK=off go mod download -json \
	"github.com/opencontainers/runc@${RUNC_UPSTREAM_VERSION}" | jq -r '.Dir // empty')
if [ -z "$SRC" ] || [ ! -f "$SRC/tests/integration/checkpoint.bats" ]; then
	die "could not get runc ${RUNC_UPSTREAM_VERSION} from the Go module cache"
fi

# --- 2. temporary copy of runc's tests/integration ---------------------------
WORK=$(mktemp -d /tmp/runc-upstream-bats.XXXXXX)
CRIU_CONF=/etc/criu/default.conf
CRIU_CONF_SAVED=""
CRIU_DIR_CREATED=""
if [ -e "$CRIU_CONF" ]; then
	CRIU_CONF_SAVED="$WORK/criu-default.conf.saved"
	cp -a "$CRIU_CONF" "$CRIU_CONF_SAVED"
elif [ ! -d /etc/criu ]; then
	CRIU_DIR_CREATED=1
fi

# runc's helpers remove the parent cgroup of set_cgroups_path from the v1
# hierarchies only; on a hybrid host an empty one stays in cgroup2's
# "unified" mount. Remove such leftovers that were not there before the run.
CG_PARENT=runc-cgroups-integration-test
cg_parents_before=$(ls -d /sys/fs/cgroup/*/"$CG_PARENT" /sys/fs/cgroup/"$CG_PARENT" 2>/dev/null || true)

probe_pids=()
cleanup() {
	local p
	for p in /sys/fs/cgroup/*/"$CG_PARENT" /sys/fs/cgroup/"$CG_PARENT"; do
		[ -d "$p" ] || continue
		grep -qxF "$p" <<<"$cg_parents_before" && continue
		find "$p" -depth -type d -exec rmdir {} \; 2>/dev/null || true
	done
	for p in "${probe_pids[@]}"; do
		kill -9 "$p" 2>/dev/null || true
	done
	if [ -n "$CRIU_CONF_SAVED" ]; then
		cp -a "$CRIU_CONF_SAVED" "$CRIU_CONF"
	else
		rm -f "$CRIU_CONF"
		if [ -n "$CRIU_DIR_CREATED" ]; then rmdir /etc/criu 2>/dev/null || true; fi
	fi
	# The tests' teardown removes it; be sure nothing is left behind
	# after an interrupted run.
	# (With the veth wrapper below, dummy0's peer stays on the host while
	# dummy0 is in a namespace.)
	ip link del dev dummy0 2>/dev/null || true
	ip link del dev dummy0-peer 2>/dev/null || true
	if [ "${UPSTREAM_BATS_KEEP:-0}" = 1 ]; then
		log "kept $WORK"
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

TESTS="$WORK/tests"
INTEGRATION="$TESTS/integration"
mkdir -p "$TESTS/cmd/_bin"
cp -r "$SRC/tests/integration" "$TESTS/"
chmod -R u+w "$TESTS"
# Module zips do not keep file modes: helpers.bash executes get-images.sh.
chmod +x "$INTEGRATION"/*.sh

# --- 3. test helper binaries -------------------------------------------------
# checkpoint.bats only needs recvtty (console socket for `run -d`/`restore -d`
# of terminal containers); sd-helper would only be used with RUNC_USE_SYSTEMD.
log "building recvtty from $SRC/tests/cmd/recvtty"
(cd "$SRC" && GOWORK=off GOFLAGS="-mod=readonly -buildvcs=false" CGO_ENABLED=0 \
	go build -o "$TESTS/cmd/_bin/recvtty" ./tests/cmd/recvtty) ||
	die "failed to build recvtty"

# --- 4. busybox test image, built offline ------------------------------------
GOARCH=$(go env GOARCH)
IMG_ROOT="$WORK/busybox-rootfs"
mkdir -p "$IMG_ROOT"/{bin,sbin,usr/bin,usr/sbin,etc,root,tmp,var/tmp,home,proc,sys,dev}
chmod 1777 "$IMG_ROOT/tmp" "$IMG_ROOT/var/tmp"
install -m 0755 "$BUSYBOX_BIN" "$IMG_ROOT/bin/busybox"
while read -r applet; do
	if [ -z "$applet" ] || [ "$applet" = bin/busybox ]; then continue; fi
	[ -e "$IMG_ROOT/$applet" ] || ln -s /bin/busybox "$IMG_ROOT/$applet"
done < <("$BUSYBOX_BIN" --list-full)
[ -e "$IMG_ROOT/bin/sh" ] || ln -s /bin/busybox "$IMG_ROOT/bin/sh"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$IMG_ROOT/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$IMG_ROOT/etc/group"
BUSYBOX_TAR="$INTEGRATION/testdata/busybox-${GOARCH}.tar.xz"
tar --numeric-owner --owner=0 --group=0 -C "$IMG_ROOT" -cJf "$BUSYBOX_TAR" .
# get-images.sh downloads any image that is missing, and it always wants a
# Debian image too: checkpoint.bats never uses it, give it busybox's.
cp "$BUSYBOX_TAR" "$INTEGRATION/testdata/debian-${GOARCH}.tar.xz"
# Check that helpers.bash's image lookup now succeeds without a download.
images=$("$INTEGRATION/get-images.sh" </dev/null) || die "get-images.sh failed: $images"
grep -qxF "BUSYBOX_IMAGE=$BUSYBOX_TAR" <<<"$images" || die "unexpected get-images.sh output: $images"

# --- 5. host probes ------------------------------------------------------------
# Start a throwaway busybox shell running $1 as the init of a new PID
# namespace, in its own session, with no tty; sets PROBE_TASK to its pid.
# (In its own PID namespace CRIU restores it under the same pids while the
# original may still exist, which the lazy-pages flow needs.)
# The task gets no file descriptor of ours beyond stdio: one inherited from
# whoever ran this script (`flock LOCKFILE make ...` passes its lock's)
# would make CRIU refuse the dump ("Some file locks are hold by dumping
# tasks"), a failure of the probe and not of the host.
start_probe_task() {
	local outer inner=""
	# (started from a subshell, so that it is no job of this shell)
	outer=$( (close_inherited_fds
		unshare --pid --fork setsid "$BUSYBOX_BIN" sh -c "$1" </dev/null >/dev/null 2>&1 & echo $!))
	probe_pids+=("$outer")
	for _ in $(seq 50); do
		inner=$(pgrep -P "$outer" || true)
		[ -n "$inner" ] && break
		sleep 0.1
	done
	[ -n "$inner" ] || return 1
	probe_pids+=("$inner")
	sleep 0.3 # let it run its first commands
	PROBE_TASK=$inner
}
# Closes every file descriptor above 2 of the calling (sub)shell.
close_inherited_fds() {
	local fd
	for fd in /proc/"$BASHPID"/fd/*; do
		fd=${fd##*/}
		[ "$fd" -gt 2 ] && eval "exec $fd>&-"
	done
	return 0
}
kill_probe_pids() {
	local p
	for p in "${probe_pids[@]}"; do
		kill -9 "$p" 2>/dev/null || true
	done
	probe_pids=()
}
# True when child $1 has exited (it is gone, or a zombie not yet waited for).
has_exited() {
	local st
	st=$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null) || return 0
	[ -z "$st" ] || [ "$st" = Z ]
}
# Runs probe "$@" in a subshell, so that whatever the probe started is
# killed even if it is interrupted, and the shell's job-status chatter about
# the killed probe processes goes to probes.err; copies back PROBE_LOG and
# PROBE_REASON.
run_probe() {
	local rc=0
	(
		trap kill_probe_pids EXIT
		r=0
		PROBE_LOG="" PROBE_REASON=""
		"$@" || r=$?
		printf '%s\n%s\n' "$PROBE_LOG" "$PROBE_REASON" >"$WORK/probe.result"
		exit "$r"
	) 2>>"$WORK/probes.err" || rc=$?
	{ read -r PROBE_LOG && read -r PROBE_REASON; } <"$WORK/probe.result" || true
	return "$rc"
}

# (0) Can CRIU dump and restore at all? CRIU (compel) stops a task after its
# parasite code with an x86 hardware breakpoint. Some VMs (Firecracker, for
# one) accept debug-register writes through ptrace but never fire them: then
# every `criu dump` hangs forever or kills the task ("Task ... is in unexpected
# state"). CRIU's own fault-injection knob CRIU_FAULT=130 (FI_NO_BREAKPOINTS)
# makes it stop the task with PTRACE_SYSCALL instead. Probe a plain dump +
# restore of a throwaway process; only if that fails and works with
# CRIU_FAULT=130, export it for the whole run (runc and runcr exec criu with
# their own environment, so both inherit it).
probe_criu_dump_restore() { # [VAR=value ...] for criu's environment
	local d="$WORK/criu-probe.$BASHPID" rpid ok=0
	mkdir -p "$d/img"
	PROBE_LOG="$d/img"
	start_probe_task 'while :; do sleep 1; done' || return 1
	if env "$@" timeout -k 2 20 criu dump -t "$PROBE_TASK" -D "$d/img" -o dump.log -v4 >"$d/out" 2>&1 &&
		env "$@" timeout -k 2 20 criu restore -D "$d/img" -o restore.log -v4 -d \
			--pidfile "$d/restored.pid" >>"$d/out" 2>&1; then
		rpid=$(cat "$d/restored.pid" 2>/dev/null || true)
		if [ -n "$rpid" ]; then
			probe_pids+=("$rpid")
			sleep 0.2
			kill -0 "$rpid" 2>/dev/null && ok=1
		fi
	fi
	kill_probe_pids
	[ "$ok" = 1 ]
}
CRIU_NOTE=""
PROBE_ENV=() # criu's environment for the probes below
if [ -z "${CRIU_FAULT:-}" ] && ! run_probe probe_criu_dump_restore; then
	failed_log=$PROBE_LOG
	if run_probe probe_criu_dump_restore CRIU_FAULT=130; then
		PROBE_ENV=(CRIU_FAULT=130)
		why=$(grep -h -m1 -E 'Error \(compel|Waiting for .* to trap' "$failed_log"/dump.log 2>/dev/null | sed 's/^([ 0-9.]*) *//' || true)
		CRIU_NOTE="a plain \`criu dump\` + \`criu restore\` fails or hangs on this host (x86 hardware breakpoints do not fire here${why:+; last dump.log line of note: $why}) and works with CRIU_FAULT=130 (FI_NO_BREAKPOINTS)"
		# runcr probes breakpoints itself and sets CRIU_FAULT for its own
		# CRIU runs; so that this run proves it, export only for others.
		if "$RUNC" --version 2>/dev/null | head -n1 | grep -q '^runcr '; then
			CRIU_NOTE+="; not exported: runcr must find this out itself"
		else
			export CRIU_FAULT=130
			CRIU_NOTE+=": exporting CRIU_FAULT=130"
		fi
	else
		die "CRIU cannot dump and restore a plain process on this host, even with CRIU_FAULT=130; see logs in $PROBE_LOG (rerun with UPSTREAM_BATS_KEEP=1)"
	fi
fi

# Host probes -> excluded tests.
EXCLUDES="$WORK/excluded-tests.tsv" # test name <TAB> reason
: >"$EXCLUDES"
exclude() { printf '%s\t%s\n' "$1" "$2" >>"$EXCLUDES"; }

# (a) pre-dump needs the kernel's soft-dirty memory tracking. (runc's test
# has `requires criu_feature_mem_dirty_track` itself; the exclusion only
# gives it a clearer reason.)
probe_mem_dirty_track() {
	local out
	if out=$(criu check --feature mem_dirty_track 2>&1); then
		return 0
	fi
	PROBE_REASON="CRIU feature mem_dirty_track missing (\`criu check --feature mem_dirty_track\`: $(tr '\n' ' ' <<<"$out" | sed 's/ *$//')), so --pre-dump cannot work"
	return 1
}

# (b) lazy pages: `criu check --feature uffd-noncoop` (what the test itself
# requires) says whether the kernel has userfaultfd, not whether CRIU's lazy
# migration works, so do a tiny real one the way the test does: `criu dump
# --lazy-pages` serving the memory from its page server (127.0.0.1 here),
# waiting for its status fd, then a `criu lazy-pages --page-server` daemon and
# `criu restore --lazy-pages`, on a busybox shell with some dirty memory in a
# PID namespace of its own. It passes when all three CRIU commands succeed and
# the restored process lives.
probe_lazy_pages() {
	local d="$WORK/lazy-probe" out port ready p dump_pid lp_pid rs_pid rpid ok=0
	local -A exit_rc=()
	mkdir -p "$d/img"
	PROBE_LOG="$d/img"
	if ! out=$(criu check --feature uffd-noncoop 2>&1); then
		PROBE_REASON="CRIU feature uffd-noncoop missing: $(tr '\n' ' ' <<<"$out")"
		return 1
	fi
	# shellcheck disable=SC2016 # (expanded by the probe's busybox shell)
	start_probe_task 'x=$(head -c 300000 /dev/zero | tr "\0" a); while :; do sleep 1; done' || {
		PROBE_REASON="could not start a probe process"
		return 1
	}
	port=$((27300 + RANDOM % 500))
	mkfifo "$d/status"
	env ${PROBE_ENV[@]+"${PROBE_ENV[@]}"} criu dump -t "$PROBE_TASK" -D "$d/img" -o dump.log -v4 --lazy-pages \
		--address 127.0.0.1 --port "$port" --status-fd 3 \
		3>"$d/status" >"$d/dump.out" 2>&1 &
	dump_pid=$!
	probe_pids+=("$dump_pid")
	ready=$(timeout 20 head -c1 "$d/status" | od -An -tx1 | tr -d ' \n' || true)
	if [ "$ready" = 00 ]; then
		env ${PROBE_ENV[@]+"${PROBE_ENV[@]}"} criu lazy-pages --page-server --address 127.0.0.1 --port "$port" \
			-D "$d/img" -o lazy-pages.log -v4 >"$d/lazy.out" 2>&1 &
		lp_pid=$!
		# The restore connects to the daemon's socket: wait for it.
		for _ in $(seq 100); do
			[ -S "$d/img/lazy-pages.socket" ] && break
			has_exited "$lp_pid" && break
			sleep 0.1
		done
		env ${PROBE_ENV[@]+"${PROBE_ENV[@]}"} criu restore -D "$d/img" -o restore.log -v4 --lazy-pages -d \
			--pidfile "$d/restored.pid" >"$d/restore.out" 2>&1 &
		rs_pid=$!
		probe_pids+=("$lp_pid" "$rs_pid")
		# All three exit once the memory is transferred; stop at the first
		# failure (the restore may hang after the dump side failed) or 30s.
		for _ in $(seq 300); do
			for p in "$dump_pid" "$lp_pid" "$rs_pid"; do
				if [ -z "${exit_rc[$p]:-}" ] && has_exited "$p"; then
					exit_rc[$p]=0
					wait "$p" || exit_rc[$p]=$?
				fi
			done
			[ "${#exit_rc[@]}" -eq 3 ] && break
			[[ " ${exit_rc[*]} " == *" "[1-9]* ]] && break
			sleep 0.1
		done
		if [ "${exit_rc[$dump_pid]:-x}${exit_rc[$lp_pid]:-x}${exit_rc[$rs_pid]:-x}" = 000 ]; then
			rpid=$(cat "$d/restored.pid" 2>/dev/null || true)
			if [ -n "$rpid" ]; then
				probe_pids+=("$rpid")
				kill -0 "$rpid" 2>/dev/null && ok=1
			fi
		fi
	fi
	kill_probe_pids
	[ "$ok" = 1 ] && return 0
	out=$(grep -h -E 'Error' "$d"/img/*.log 2>/dev/null | grep -v RLIMIT_NOFILE |
		sed -e 's/^([ 0-9.]*) *//' | head -3 | tr '\n' ';' | sed 's/; *$//' || true)
	PROBE_REASON="a real CRIU lazy-pages migration (criu dump --lazy-pages + criu lazy-pages + criu restore --lazy-pages) of a plain process fails on this host${out:+: $out}"
	[ "$ready" = 00 ] || PROBE_REASON+=" (the dump side never reported ready)"
	return 1
}

if [ "${UPSTREAM_BATS_NO_EXCLUDE:-0}" != 1 ]; then
	PROBE_REASON=""
	if ! run_probe probe_mem_dirty_track; then
		exclude "checkpoint --pre-dump and restore" "$PROBE_REASON"
	fi
	PROBE_REASON=""
	if ! run_probe probe_lazy_pages; then
		exclude "checkpoint --lazy-pages and restore" "$PROBE_REASON"
	fi
fi

# (c) checkpoint.bats creates dummy0 with `ip link add dummy0 type dummy`
# (v1.4: setup() of every test; only the netdevice test uses it) or `ip link
# add dummy0 address MAC mtu N type dummy` (v1.5: the netdevice test, all
# link parameters at creation time). On a kernel built without CONFIG_DUMMY
# that fails; then an `ip` wrapper first on the tests' PATH turns any `ip
# link add [name|dev] NAME [OPTION...] type dummy` into the same command
# with `type veth peer name NAME-peer`: NAME, one end of a veth pair, is a
# standalone Ethernet device too (its MTU, MAC and addresses can be set, at
# creation or after, and it can be moved into another network namespace;
# the pair goes away with either end). Every other `ip` command goes to the
# real ip unchanged.
SHIM_BIN="$WORK/shim-bin"
mkdir -p "$SHIM_BIN"
DUMMY_NOTE=""
probe_if="rcrprobe$((RANDOM % 10000))"
if ip link add "$probe_if" type dummy 2>/dev/null; then
	ip link del dev "$probe_if"
else
	REAL_IP=$(command -v ip)
	cat >"$SHIM_BIN/ip" <<SHIM
#!/bin/bash
# Generated by runcr's tests/upstream/run-runc-checkpoint-bats.sh: this
# kernel has no dummy network devices (CONFIG_DUMMY), make a veth instead.
args=("\$@")
n=\$#
if [ "\$n" -ge 5 ] && [ "\$1" = link ] && [ "\$2" = add ] &&
	[ "\${args[n-2]}" = type ] && [ "\${args[n-1]}" = dummy ]; then
	name=\$3
	case \$name in name | dev) name=\$4 ;; esac
	exec $REAL_IP "\${args[@]:0:n-2}" type veth peer name "\${name:0:10}-peer"
fi
exec $REAL_IP "\$@"
SHIM
	chmod +x "$SHIM_BIN/ip"
	DUMMY_NOTE="kernel has no dummy network devices (no CONFIG_DUMMY): the tests' \`ip link add dummy0 [OPTION...] type dummy\` makes a veth pair instead"
fi
# (d) v1.5's netdevice test waits for udev (`udevadm settle`) after
# creating dummy0, so that no udev rule renames or reconfigures it under
# the test. Without udev on the host there is nothing to wait for: a
# stand-in udevadm that accepts `settle` (and nothing else) and returns.
UDEV_NOTE=""
if ! command -v udevadm >/dev/null; then
	cat >"$SHIM_BIN/udevadm" <<'SHIM'
#!/bin/sh
# Generated by runcr's tests/upstream/run-runc-checkpoint-bats.sh: no udev on
# this host, so no event queue for `udevadm settle` to wait for.
[ "$1" = settle ] && exit 0
echo "udevadm: no udev on this host (stand-in only knows settle)" >&2
exit 1
SHIM
	chmod +x "$SHIM_BIN/udevadm"
	UDEV_NOTE="no udev on this host (no udevadm): \`udevadm settle\` is a stand-in that returns at once"
fi

# Shim: helpers.bash = runc's helpers.bash, unchanged, plus a wrapper around
# its `requires` that skips excluded tests (checkpoint.bats's setup() calls
# `requires criu root` before anything else).
mv "$INTEGRATION/helpers.bash" "$INTEGRATION/helpers.upstream.bash"
cat >"$INTEGRATION/helpers.bash" <<'EOF'
# Generated by runcr's tests/upstream/run-runc-checkpoint-bats.sh.
source "$(dirname "${BASH_SOURCE[0]}")/helpers.upstream.bash"
eval "__upstream_$(declare -f requires)"
function requires() {
	local name reason
	if [ -s "${UPSTREAM_BATS_EXCLUDES:-}" ]; then
		while IFS=$'\t' read -r name reason; do
			if [ "$name" = "${BATS_TEST_DESCRIPTION:-}" ]; then
				skip "excluded on this host: $reason"
			fi
		done <"$UPSTREAM_BATS_EXCLUDES"
	fi
	__upstream_requires "$@"
}
EOF
export UPSTREAM_BATS_EXCLUDES="$EXCLUDES"

# --- 6. run -------------------------------------------------------------------
runc_version=$("$RUNC" --version 2>/dev/null || true)
log "runtime under test: $RUNC (${runc_version%%$'\n'*})"
UNDER_TEST=$RUNC
if [[ $runc_version == runcr* ]]; then
	passthrough=${RUNCR_RUNC:-$(command -v runc || true)}
	passthrough_version=$("$passthrough" --version 2>/dev/null | head -1 || true)
	log "runcr passes run, exec, state, ... to: $passthrough (${passthrough_version:-not runnable})"
	UNDER_TEST+=" (pass-through: $passthrough, ${passthrough_version:-not runnable})"
fi
log "tests: runc ${RUNC_UPSTREAM_VERSION} tests/integration/checkpoint.bats (copied from $SRC to $INTEGRATION)"
[ -n "$CRIU_NOTE" ] && log "note: $CRIU_NOTE"
[ -n "$DUMMY_NOTE" ] && log "note: $DUMMY_NOTE"
[ -n "$UDEV_NOTE" ] && log "note: $UDEV_NOTE"
while IFS=$'\t' read -r name reason; do
	log "excluding \"$name\": $reason"
done <"$EXCLUDES"

bats_args=(--tap)
[ -n "${UPSTREAM_BATS_FILTER:-}" ] && bats_args+=(--filter "$UPSTREAM_BATS_FILTER")
TAP="$WORK/checkpoint.tap"
# A hung test (e.g. a CRIU or runtime hang) fails after this many seconds.
export BATS_TEST_TIMEOUT=${UPSTREAM_BATS_TEST_TIMEOUT:-120}
set +e
(cd "$INTEGRATION" && PATH="$SHIM_BIN:$PATH" TMPDIR="$WORK" bats "${bats_args[@]}" checkpoint.bats) 2>&1 | tee "$TAP"
bats_rc=${PIPESTATUS[0]}
set -e

passed=$(grep -cE '^ok [0-9]+ ' "$TAP" || true)
skipped=$(grep -cE '^ok [0-9]+ .* # skip' "$TAP" || true)
failed=$(grep -cE '^not ok [0-9]+ ' "$TAP" || true)
passed=$((passed - skipped))
planned=$(sed -n 's/^1\.\.\([0-9]*\)$/\1/p' "$TAP" | head -1)

echo
echo "# runc ${RUNC_UPSTREAM_VERSION} checkpoint.bats against $UNDER_TEST"
grep -E '^ok [0-9]+ .* # skip' "$TAP" | sed 's/^ok [0-9]* /#   skipped: /' || true
grep -E '^not ok [0-9]+ ' "$TAP" | sed 's/^not ok [0-9]* /#   FAILED:  /' || true
rc=0
if [ "$failed" -gt 0 ] || [ "$bats_rc" -ne 0 ]; then
	rc=1
fi
if [ -z "$planned" ] || [ $((passed + skipped + failed)) -ne "$planned" ]; then
	echo "# bats did not report all planned tests (plan: ${planned:-none}, exit $bats_rc)"
	rc=1
fi
echo "${passed} passed, ${failed} failed, ${skipped} skipped"
exit "$rc"
