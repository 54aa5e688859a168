#!/bin/bash
# Helpers for runcr's integration tests. Run the suite as
#
#   RUNCR=/abs/path/runcr ROOTFS=/abs/path/rootfs bats tests/integration
#
# Every runtime command in a test goes through runcr (checkpoint and restore
# are runcr's own, the rest are passed on to runc), so the tests also prove
# the pass-through. $RUNC (default: runc on PATH) is the real runc, used for
# comparison, probes and cleanup.
#
# Optional environment:
#   RUNCR_TEST_TIMEOUT  seconds any one runcr/runc call may take (default 60)
#   RUNCR_TEST_LOGDIR   where per-test logs go (default tests/.build/logs)
#   RECVTTY             console-socket receiver (default tests/.build/recvtty,
#                       built on demand from runc's module in the Go cache)

# shellcheck disable=SC2154 # status and output are set by bats' run
bats_require_minimum_version 1.5.0

INTEGRATION_ROOT=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
REPO_ROOT=$(dirname "$(dirname "$INTEGRATION_ROOT")")
BUILD_DIR=$REPO_ROOT/tests/.build

: "${RUNCR:?set RUNCR to the absolute path of the runcr binary}"
: "${ROOTFS:?set ROOTFS to the rootfs built by tests/setup/make-rootfs.sh}"
: "${RUNC:=$(command -v runc)}"
: "${RUNCR_TEST_TIMEOUT:=60}"
: "${RUNCR_TEST_LOGDIR:=$BUILD_DIR/logs}"
: "${RECVTTY:=$BUILD_DIR/recvtty}"
: "${FLOCKER:=$BUILD_DIR/flocker}"

# Extra environment for CRIU-driving commands (see probe_criu).
CRIU_ENV=()
CRIU_ENV_RUNC=()

# ---------------------------------------------------------------- logging

# Appends to the per-test log and to the bats output (shown on failure).
log() {
	printf '%s\n' "$*" >&2
	[ -n "${TEST_LOG:-}" ] && printf '[%7ss] %s\n' "$(elapsed)" "$*" >>"$TEST_LOG"
	return 0
}

# Seconds since the test's setup began.
elapsed() {
	local now=${EPOCHREALTIME/[.,]/}
	local cs=$(((now - ${TEST_START:-$now}) / 10000))
	printf '%d.%02d' $((cs / 100)) $((cs % 100))
}

fail() {
	log "FAIL: $*"
	return 1
}

# Raw runcr with this test's private state dir, bounded in time. timeout
# kills its whole process group, so a hung CRIU goes too.
__runcr() {
	env "${CRIU_ENV[@]}" timeout -k 5 "$RUNCR_TEST_TIMEOUT" "$RUNCR" --root "$STATE" "$@"
}

# The same for the real runc.
__runc() {
	env "${CRIU_ENV_RUNC[@]}" timeout -k 5 "$RUNCR_TEST_TIMEOUT" "$RUNC" --root "$STATE" "$@"
}

# runcr under bats' `run`, logging the full command line, status and output.
runcr() {
	run __runcr "$@"
	log "\$ $RUNCR --root $STATE $* (status=$status)"
	[ -n "$output" ] && log "$output"
	return 0
}

# The same for the real runc.
runc() {
	run __runc "$@"
	log "\$ $RUNC --root $STATE $* (status=$status)"
	[ -n "$output" ] && log "$output"
	return 0
}

# ---------------------------------------------------------------- requires

# True when $RUNCR is runcr rather than a plain runc.
is_runcr() {
	[ "$(readlink -f "$RUNCR")" != "$(readlink -f "$RUNC")" ] &&
		"$RUNCR" --version 2>/dev/null | grep -q '^runcr'
}

# Skips the test (printing why) unless the host or binary has what it needs.
#   root | runcr | netns | recvtty | flocker | host_cmd CMD | criu_feature NAME
#   criu_inet (CRIU can dump inet sockets) | criu_lazy_pages (lazy migration works)
requires() {
	while [ $# -gt 0 ]; do
		case $1 in
		root)
			[ "$EUID" -eq 0 ] || skip "needs root"
			;;
		runcr)
			is_runcr || skip "checks runcr's own behaviour; \$RUNCR ($RUNCR) is plain runc"
			;;
		netns)
			command -v ip >/dev/null || skip "needs ip (iproute2)"
			;;
		recvtty)
			ensure_recvtty || fail "building runc's recvtty failed (see $TEST_LOG)"
			;;
		flocker)
			ensure_flocker || fail "building tests/cmd/flocker failed (see $TEST_LOG)"
			;;
		host_cmd)
			shift
			command -v "$1" >/dev/null || skip "needs $1 on the host"
			;;
		criu_feature)
			shift
			local out
			if ! out=$(criu check --feature "$1" 2>&1); then
				skip "CRIU feature $1 is missing on this host: $(echo "$out" | tail -1)"
			fi
			;;
		criu_inet)
			probe criu_inet || skip "CRIU can't dump inet sockets on this host: $PROBE_RESULT"
			;;
		criu_lazy_pages)
			probe criu_lazy_pages || skip "CRIU lazy migration doesn't work on this host: $PROBE_RESULT"
			;;
		*)
			fail "requires: unknown requirement $1"
			return 1
			;;
		esac
		shift
	done
}

# ---------------------------------------------------------------- probes

# Runs probe_NAME once per bats run (cached, shared by all files) and
# returns its verdict; PROBE_RESULT gets "ok ..." or the failure reason.
probe() {
	local name=$1 dir=$BATS_RUN_TMPDIR/probes lock
	mkdir -p "$dir"
	exec {lock}>"$dir/$name.lock"
	flock "$lock"
	if [ ! -s "$dir/$name" ]; then
		local reason
		if reason=$("probe_$name" 2>>"$dir/$name.log" 3>&- {lock}>&-); then
			echo "ok${reason:+ $reason}" >"$dir/$name"
		else
			echo "${reason:-probe failed, see $dir/$name.log}" >"$dir/$name"
		fi
	fi
	exec {lock}>&-
	PROBE_RESULT=$(cat "$dir/$name")
	[[ $PROBE_RESULT == ok* ]]
}

# First telling error line of a CRIU log (the RLIMIT one is noise here).
criu_error() {
	grep -h 'Error' "$@" 2>/dev/null | grep -v 'RLIMIT_NOFILE' | head -1 | sed 's/^([0-9. ]*) *//'
}

# Dumps (leaving it running) a process started from "$@"; prints CRIU's
# error on failure. Uses CRIU_FAULT from the environment if set.
criu_probe_dump() {
	local d pid rc=0
	d=$(mktemp -d "$BATS_RUN_TMPDIR/probes/dump.XXXXXX")
	setsid "$@" </dev/null >/dev/null 2>&1 3>&- &
	pid=$!
	sleep 0.3
	timeout -k 2 10 criu dump -t "$pid" -D "$d" -o dump.log -v4 --shell-job --leave-running \
		>/dev/null 2>&1 || rc=$?
	kill -9 "$pid" 2>/dev/null
	if [ "$rc" -ne 0 ]; then
		if [ "$rc" -ge 124 ]; then
			echo "criu dump hung: $(tail -1 "$d/dump.log" 2>/dev/null)"
		else
			criu_error "$d/dump.log"
		fi
	fi
	rm -rf "$d"
	return "$rc"
}

# Can CRIU dump anything? Where x86 hardware breakpoints never fire (some
# VMs) CRIU hangs after the parasite cure unless CRIU_FAULT=130 turns them
# off; the result says whether that was needed.
probe_criu() {
	command -v criu >/dev/null || {
		echo "criu is not installed"
		return 1
	}
	local why
	why=$(criu_probe_dump sleep 600) && return 0
	if [ -z "${CRIU_FAULT:-}" ] && CRIU_FAULT=130 criu_probe_dump sleep 600 >/dev/null; then
		echo "CRIU_FAULT=130"
		return 0
	fi
	echo "criu can't dump a sleep process: $why"
	return 1
}

# Kernels >= 6.16 refuse SO_PASSCRED on inet sockets and CRIU 4.1 then
# fails to dump any of them.
probe_criu_inet() {
	local port=$((20000 + RANDOM % 20000))
	criu_probe_dump socat "TCP-LISTEN:$port,bind=127.0.0.1,reuseaddr" /dev/null
}

# A full lazy migration of a sleeping container with the real runc.
probe_criu_lazy_pages() {
	local out
	if ! out=$(criu check --feature uffd-noncoop 2>&1); then
		echo "CRIU feature uffd-noncoop is missing: $out"
		return 1
	fi
	(
		# shellcheck disable=SC2030 # lazy_probe runs in this subshell
		STATE=$(mktemp -d "$BATS_RUN_TMPDIR/probes/lazy.XXXXXX")
		trap 'lazy_probe_cleanup' EXIT
		lazy_probe
	)
}

# shellcheck disable=SC2031 # STATE is the probe's, set by the caller's subshell
lazy_probe() {
	local d=$STATE port=$((20000 + RANDOM % 20000)) p lr lw in
	mkdir "$d/bundle" "$d/img" "$d/work"
	cp -a "$ROOTFS" "$d/bundle/rootfs"
	(cd "$d/bundle" && "$RUNC" spec) || return 1
	jq '.process.terminal = false | .root.readonly = false | .process.args = ["sleep", "600"]' \
		"$d/bundle/config.json" >"$d/config.json" && mv "$d/config.json" "$d/bundle/config.json"
	exec {in}<> <(:)
	__runc run -d --bundle "$d/bundle" lazy-src <&"$in" >&"$in" 2>&"$in" || {
		echo "runc run failed"
		return 1
	}
	exec {p}<> <(:)
	# shellcheck disable=SC2094 # both ends of one pipe
	exec {lr}</proc/self/fd/$p {lw}>/proc/self/fd/$p {p}>&-
	setsid timeout -k 2 20 env "${CRIU_ENV_RUNC[@]}" "$RUNC" --root "$d" checkpoint --lazy-pages \
		--page-server "127.0.0.1:$port" --status-fd "$lw" --manage-cgroups-mode ignore \
		--work-path "$d/work" --image-path "$d/img" lazy-src </dev/null >"$d/ckpt.out" 2>&1 3>&- &
	echo $! >"$d/pids"
	exec {lw}>&-
	if [ "$(timeout 10 head -c1 <&"$lr" | od -An -tx1 | tr -d ' ')" != "00" ]; then
		echo "no status byte from the lazy checkpoint: $(criu_error "$d/work/dump.log")"
		return 1
	fi
	setsid timeout -k 2 20 env "${CRIU_ENV_RUNC[@]}" criu lazy-pages --page-server --address 127.0.0.1 \
		--port "$port" -D "$d/img" -W "$d/img" -o lazy-pages.log -v4 </dev/null >/dev/null 2>&1 3>&- &
	echo $! >>"$d/pids"
	wait_for 50 0.1 test -S "$d/img/lazy-pages.socket"
	__runc restore -d --lazy-pages --manage-cgroups-mode ignore --bundle "$d/bundle" \
		--work-path "$d/img" --image-path "$d/img" lazy-dst <&"$in" >&"$in" 2>&"$in" || true
	# The dump side finishes once every page has been sent.
	wait_for 100 0.1 grep -qE 'Dumping finished successfully|FAILED' "$d/work/dump.log"
	if grep -q 'Dumping finished successfully' "$d/work/dump.log" &&
		__runc exec lazy-dst true; then
		return 0
	fi
	out=$(criu_error "$d/work/dump.log")
	[ -n "$out" ] || out=$(criu_error "$d/img/restore.log" "$d/img/lazy-pages.log")
	echo "${out:-lazy migration did not complete}"
	return 1
}

# shellcheck disable=SC2031
lazy_probe_cleanup() {
	local d=$STATE p ct
	while read -r p; do
		kill -9 -- "-$p" 2>/dev/null
	done < <(cat "$d/pids" 2>/dev/null)
	for ct in lazy-src lazy-dst; do
		"$RUNC" --root "$d" delete -f "$ct" >/dev/null 2>&1
	done
	umount_under "$d"
	rm -rf "$d"
}

# Applies probe_criu's verdict: CRIU_FAULT for runc (and for runcr only when
# it is plain runc; runcr is expected to cope by itself).
setup_criu_env() {
	CRIU_ENV=()
	CRIU_ENV_RUNC=()
	probe criu || skip "CRIU doesn't work on this host: $PROBE_RESULT"
	if [[ $PROBE_RESULT == *CRIU_FAULT=130* ]]; then
		CRIU_ENV_RUNC=(CRIU_FAULT=130)
		is_runcr || CRIU_ENV=(CRIU_FAULT=130)
	fi
}

# ---------------------------------------------------------------- setup

setup_common() {
	requires root
	[ -x "$RUNCR" ] || fail "RUNCR=$RUNCR is not executable"
	[ -x "$RUNC" ] || fail "RUNC=$RUNC is not executable"
	[ -x "$ROOTFS/bin/busybox" ] || fail "ROOTFS=$ROOTFS has no bin/busybox; run make rootfs"

	local base
	TEST_START=${EPOCHREALTIME/[.,]/}
	base=$(basename "$BATS_TEST_FILENAME" .bats)
	mkdir -p "$RUNCR_TEST_LOGDIR"
	TEST_LOG=$RUNCR_TEST_LOGDIR/$base-$(printf %02d "$BATS_TEST_NUMBER").log
	printf '# %s: %s\n' "$base" "$BATS_TEST_DESCRIPTION" >"$TEST_LOG"

	ROOT=$(mktemp -d "$BATS_RUN_TMPDIR/t.XXXXXX")
	STATE=$ROOT/state
	BUNDLE=$ROOT/bundle
	mkdir -p "$STATE" "$BUNDLE"
	# Unique across concurrent runs: the id names the container's cgroups.
	CT=rcr-$$-$BATS_TEST_NUMBER
	BG_PIDS=()
	NETNS=()
	CT_OUT=$ROOT/ct.out
	: >"$CT_OUT"
	setup_criu_env
}

# A private copy of the rootfs and a runc spec, non-terminal and writable.
setup_bundle() {
	cp -a "$ROOTFS" "$BUNDLE/rootfs"
	cd "$BUNDLE" || return 1
	"$RUNC" spec
	update_config '.process.terminal = false | .root.readonly = false | .hostname = "runcr-test"'
}

setup() {
	setup_common
	setup_bundle
}

# Edits config.json with a jq filter (extra args go to jq first).
update_config() {
	local cfg=$BUNDLE/config.json
	jq "$@" "$cfg" >"$cfg.new" && mv "$cfg.new" "$cfg"
}

set_args() {
	local a arg
	a=$(for arg in "$@"; do jq -n --arg a "$arg" '$a'; done | jq -cs .)
	# shellcheck disable=SC2016 # a jq variable
	update_config --argjson a "$a" '.process.args = $a'
}

# Copies a host binary and the shared libraries it needs into the rootfs.
install_host_binary() {
	local bin lib
	bin=$(command -v "$1") || fail "$1 is not installed on the host"
	install -D -m 0755 "$bin" "$BUNDLE/rootfs/usr/bin/$1"
	for lib in $(ldd "$bin" | awk '/=>/ { print $3 } /^\t\// { print $1 }'); do
		install -D -m 0755 "$lib" "$BUNDLE/rootfs$lib"
	done
}

# Starts a command in its own session, detached from bats' fds; teardown
# kills its process group.
background() {
	setsid "$@" </dev/null >>"$ROOT/bg.out" 2>&1 3>&- &
	BG_PIDS+=($!)
	disown $!
}

# ---------------------------------------------------------------- teardown

teardown() {
	cd "$ROOT" 2>/dev/null || cd / || true
	local p ct ns
	for p in "${BG_PIDS[@]}"; do
		kill -9 -- "-$p" 2>/dev/null || kill -9 "$p" 2>/dev/null
	done
	for ct in $("$RUNCR" --root "$STATE" list -q 2>/dev/null) $("$RUNC" --root "$STATE" list -q 2>/dev/null); do
		"$RUNCR" --root "$STATE" delete -f "$ct" >/dev/null 2>&1 ||
			"$RUNC" --root "$STATE" delete -f "$ct" >/dev/null 2>&1
	done
	close_pipes
	for ns in "${NETNS[@]}"; do
		ip netns del "$ns" 2>/dev/null
	done
	# Keep what explains a failure: the container's output and CRIU's logs.
	{
		echo "--- container output"
		cat "$CT_OUT" "$ROOT/bg.out" 2>/dev/null
		find "$ROOT" -name '*.log' 2>/dev/null | while read -r p; do
			echo "--- $p"
			cat "$p"
		done
	} >>"$TEST_LOG" 2>/dev/null
	if [ -z "${BATS_TEST_COMPLETED:-}" ]; then
		echo "--- container output (tail)"
		tail -20 "$CT_OUT" 2>/dev/null
		echo "--- CRIU errors"
		find "$ROOT" -name '*.log' -exec grep -H 'Error' {} + 2>/dev/null | grep -v RLIMIT_NOFILE | tail -20
		echo "--- full log: $TEST_LOG"
	fi
	umount_under "$ROOT"
	rm -rf "$ROOT"
	return 0
}

# Lazily unmounts whatever is still mounted below $1 (e.g. a leaked criu-root).
umount_under() {
	local m
	awk -v d="$1/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
		while read -r m; do umount -l "$m" 2>/dev/null; done
	return 0
}

# ---------------------------------------------------------------- stdio

# Pipes for a detached container: CRIU can't dump a container whose stdio is
# a host file or terminal. stdin is a pipe we keep open (no EOF); stdout and
# stderr go through a pipe into $CT_OUT.
setup_pipes() {
	local p
	exec {p}<> <(:)
	# shellcheck disable=SC2094 # both ends of one pipe
	exec {STDIN_R}</proc/self/fd/$p {STDIN_W}>/proc/self/fd/$p {p}>&-
	exec {STDOUT_W}> >(exec cat >>"$CT_OUT" 3>&-)
	BG_PIDS+=($!)
}

close_pipes() {
	[ -n "${STDIN_R:-}" ] && exec {STDIN_R}<&- {STDIN_W}>&-
	[ -n "${STDOUT_W:-}" ] && exec {STDOUT_W}>&-
	STDIN_R='' STDIN_W='' STDOUT_W=
	return 0
}

# Runs `runcr ARGS` with the container pipes as stdio (for run -d and
# restore): runc hands its own stdio to the container, so runcr's messages
# land in $CT_OUT, which is shown on failure.
runcr_with_pipes() {
	[ -n "${STDIN_R:-}" ] || setup_pipes
	local mark rc=0
	mark=$(wc -c <"$CT_OUT")
	__runcr "$@" <&"$STDIN_R" >&"$STDOUT_W" 2>&"$STDOUT_W" || rc=$?
	log "\$ $RUNCR --root $STATE $* (status=$rc, stdio: pipes)"
	if [ "$rc" -ne 0 ]; then
		sleep 0.2
		log "$(tail -c +"$((mark + 1))" "$CT_OUT")"
	fi
	return "$rc"
}

runc_with_pipes() {
	[ -n "${STDIN_R:-}" ] || setup_pipes
	local rc=0
	__runc "$@" <&"$STDIN_R" >&"$STDOUT_W" 2>&"$STDOUT_W" || rc=$?
	log "\$ $RUNC --root $STATE $* (status=$rc, stdio: pipes)"
	return "$rc"
}

# ---------------------------------------------------------------- containers

# Retries a command ATTEMPTS times, DELAY seconds apart, until it succeeds.
wait_for() {
	local attempts=$1 delay=$2 i
	shift 2
	for ((i = 0; i < attempts; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep "$delay"
	done
	return 1
}

# Checks `runcr state` of container $1: running/paused/..., or "gone".
expect_state() {
	local id=$1 want=$2
	runcr state "$id"
	if [ "$want" = gone ]; then
		[ "$status" -ne 0 ] || fail "container $id still exists: $output"
		return
	fi
	[ "$status" -eq 0 ] || fail "runcr state $id failed"
	[ "$(jq -r .status <<<"$output")" = "$want" ] ||
		fail "container $id is $(jq -r .status <<<"$output"), want $want"
}

container_pid() {
	__runcr state "$1" | jq -r .pid
}

run_detached() {
	runcr_with_pipes run -d "${1:-$CT}" || fail "runcr run -d failed"
	expect_state "${1:-$CT}" running
}

restore_detached() {
	local id=$1
	shift
	runcr_with_pipes restore -d "$@" "$id" || fail "runcr restore -d $id failed"
	expect_state "$id" running
}

# restore_detached_any ID ARGS: restores detached; a container dumped while
# paused may come back paused, as with runc, and is resumed then.
restore_detached_any() {
	local id=$1
	shift
	runcr_with_pipes restore -d "$@" "$id" || fail "runcr restore -d $id failed"
	runcr state "$id"
	if [ "$(jq -r .status <<<"$output")" = paused ]; then
		runcr resume "$id"
	fi
	expect_state "$id" running
}

# ---------------------------------------------------------------- workloads

# A shell loop keeping a counter and a random token in its memory. Every
# 0.1 s it prints the counter and publishes "COUNTER TOKEN OK" to /tmp/state;
# it exits with the status written to /tmp/exit once that file appears.
# shellcheck disable=SC2016 # expanded by the container's shell
COUNTER_LOOP='t=$(head -c 6 /dev/urandom | od -An -tx1 | tr -d " ")
i=0
while [ ! -e /tmp/exit ]; do
	i=$((i + 1))
	echo "$i"
	echo "$i $t OK" >/tmp/state.new
	mv /tmp/state.new /tmp/state
	sleep 0.1
done
exit "$(cat /tmp/exit)"'

# Runs COUNTER_LOOP, after the shell code in $1 if given.
use_counter_workload() {
	set_args sh -c "${1:-}$COUNTER_LOOP"
}

# An awk program holding MEM_LINES (default 8000) strings of 500 bytes in a
# known pattern (about 4 MB) and a random token. Every tick it bumps a
# counter, re-verifies every string and publishes "COUNTER TOKEN OK|CORRUPT"
# to /tmp/state (atomically, by rename). Ticks come from a shell loop on its
# standard input and a second loop publishes what it prints: awk itself
# never calls system(), whose vfork leaves the parent in state D until the
# child execs, and CRIU can't seize a process frozen there ("Unseizable
# non-zombie"). Run alone (no TICKS), it ticks and publishes by itself.
use_memory_workload() {
	cat >"$BUNDLE/rootfs/memtest.awk" <<'EOF'
function pat(i) { return sprintf("%07d:%s", i, substr(base, 1 + i % 97, 492)) }
function tick(  i, status) {
	c++
	status = "OK"
	for (i = 0; i < n; i++) if (mem[i] != pat(i)) { status = "CORRUPT"; break }
	return sprintf("%d %d %s", c, token, status)
}
BEGIN {
	n = ENVIRON["MEM_LINES"] + 0
	if (n <= 0) n = 8000
	for (i = 0; i < 600; i++) base = base sprintf("%c", 65 + i % 26)
	srand(); token = int(rand() * 1000000000)
	for (i = 0; i < n; i++) mem[i] = pat(i)
	if (ENVIRON["TICKS"] == "") for (;;) {
		print tick() > "/tmp/state.new"
		close("/tmp/state.new")
		if (system("mv /tmp/state.new /tmp/state; sleep 0.2; test ! -e /tmp/exit")) exit 0
	}
}
{ print tick(); fflush() }
EOF
	# shellcheck disable=SC2016 # expanded by the container's shell
	set_args sh -c 'while [ ! -e /tmp/exit ]; do echo; sleep 0.2; done | TICKS=1 awk -f /memtest.awk |
while read -r line; do echo "$line" >/tmp/state.new && mv /tmp/state.new /tmp/state; done'
}

# Reads the workload's state through `runcr exec` into COUNTER, TOKEN, MEM.
read_state() {
	local id=${1:-$CT} i
	for i in $(seq 20); do
		runcr exec "$id" cat /tmp/state
		if [ "$status" -eq 0 ] && [[ $output =~ ^[0-9]+\ [0-9a-f]+\ [A-Z]+$ ]]; then
			read -r COUNTER TOKEN MEM <<<"$output"
			return 0
		fi
		sleep 0.1
	done
	fail "can't read /tmp/state of $id"
}

# The same from the host, for a container that is gone (its last words).
read_state_file() {
	read -r COUNTER TOKEN MEM <"$BUNDLE/rootfs/tmp/state" || fail "no /tmp/state"
}

# Waits until the workload of container $1 counts past $2; then checks it is
# the same process (token $3) and its memory is intact.
expect_progress() {
	local id=$1 after=$2 token=$3 i
	for i in $(seq 50); do
		read_state "$id"
		[ "$COUNTER" -gt "$after" ] && break
		sleep 0.2
	done
	log "state of $id: counter $COUNTER (was $after), token $TOKEN (was $token), memory $MEM"
	[ "$COUNTER" -gt "$after" ] || fail "counter stuck at $COUNTER"
	[ "$TOKEN" = "$token" ] || fail "token changed: the workload restarted instead of carrying on"
	[ "$MEM" = OK ] || fail "the workload found its memory $MEM"
}

# Starts the workload and returns once it has published a state.
start_workload() {
	run_detached "${1:-$CT}"
	read_state "${1:-$CT}"
	expect_progress "${1:-$CT}" "$COUNTER" "$TOKEN"
}

# The cgroup directory of process $1 (v1: its pids controller; v2: unified).
cgroup_dir() {
	local p
	p=$(sed -n 's/^[0-9]*:pids:\(.*\)$/\1/p' "/proc/$1/cgroup")
	if [ -n "$p" ]; then
		echo "/sys/fs/cgroup/pids$p"
	else
		echo "/sys/fs/cgroup$(sed -n 's/^0::\(.*\)$/\1/p' "/proc/$1/cgroup")"
	fi
}

# ---------------------------------------------------------------- images

# Asserts that $1 holds a complete CRIU image.
expect_image() {
	[ -f "$1/inventory.img" ] || fail "$1 has no inventory.img"
	ls "$1"/pages-*.img >/dev/null 2>&1 || fail "$1 has no pages-*.img"
}

# Disk usage in KiB of the pages images in $1 (holes don't count).
pages_kib() {
	du -k "$1"/pages-*.img 2>/dev/null | awk '{s += $1} END {print s + 0}'
}

# ---------------------------------------------------------------- network

# A network namespace that outlives the container; the container joins it.
# Prints nothing; sets NS and NS_PATH.
setup_netns() {
	NS=rcr-$$-$BATS_TEST_NUMBER
	ip netns add "$NS" || fail "ip netns add $NS failed"
	NETNS+=("$NS")
	NS_PATH=/run/netns/$NS
	ip netns exec "$NS" ip link set lo up
	# shellcheck disable=SC2016 # a jq variable
	update_config --arg p "$NS_PATH" '(.linux.namespaces[] | select(.type == "network")).path = $p'
}

# A peer namespace linked to $NS by a veth pair: 10.77.0.1 (peer side) and
# 10.77.0.2 (container side).
setup_veth() {
	PEER_NS=${NS}p
	ip netns add "$PEER_NS" || fail "ip netns add $PEER_NS failed"
	NETNS+=("$PEER_NS")
	ip link add "rv$$a" netns "$PEER_NS" type veth peer name "rv$$b" netns "$NS" ||
		fail "can't create a veth pair"
	ip -n "$PEER_NS" addr add 10.77.0.1/24 dev "rv$$a"
	ip -n "$PEER_NS" link set "rv$$a" up
	ip -n "$NS" addr add 10.77.0.2/24 dev "rv$$b"
	ip -n "$NS" link set "rv$$b" up
	# shellcheck disable=SC2034 # used by the tests
	VETH_CT=rv$$b
}

netns_inode() {
	stat -L -c %i "$1"
}

# ---------------------------------------------------------------- tty

# Builds a Go test helper (package $2) into $1 once, statically.
go_build_once() {
	local out=$1 pkg=$2 lock rc=0 dir=${GO_BUILD_DIR:-$REPO_ROOT}
	# Built already, from sources no newer than the binary.
	[ -x "$out" ] && [ -z "$(find "$dir/$pkg" -maxdepth 1 -name '*.go' -newer "$out" 2>/dev/null)" ] && return 0
	mkdir -p "$(dirname "$out")"
	exec {lock}>"$out.lock"
	flock "$lock"
	if [ ! -x "$out" ] || [ -n "$(find "$dir/$pkg" -maxdepth 1 -name '*.go' -newer "$out" 2>/dev/null)" ]; then
		# shellcheck disable=SC2086 # GO_BUILD_ENV is a list of VAR=value words
		(cd "$dir" && env ${GO_BUILD_ENV:-} CGO_ENABLED=0 PATH=$PATH:/usr/local/go/bin go build -o "$out" "$pkg") \
			>>"$TEST_LOG" 2>&1 || rc=$?
	fi
	exec {lock}>&-
	return "$rc"
}

# runc's console-socket receiver, built from runc's module in the Go cache.
# It is built inside the module's own directory (with runc's vendor tree):
# runcr's go.sum does not cover recvtty's imports.
ensure_recvtty() {
	local dir
	[ -x "$RECVTTY" ] && return 0
	dir=$(cd "$REPO_ROOT" && PATH=$PATH:/usr/local/go/bin go mod download -json github.com/opencontainers/runc |
		jq -r .Dir) 2>>"$TEST_LOG" && [ -d "$dir" ] || return 1
	GO_BUILD_DIR=$dir GO_BUILD_ENV="GOWORK=off GOFLAGS=-buildvcs=false" go_build_once "$RECVTTY" ./tests/cmd/recvtty
}

# tests/cmd/flocker: holds an flock (busybox has no flock applet).
ensure_flocker() {
	go_build_once "$FLOCKER" ./tests/cmd/flocker
}

# Starts recvtty on a fresh socket: mode null (drains every pty it gets) or
# single (copies the one pty it gets to $ROOT/tty.out). Sets CONSOLE_SOCKET.
start_recvtty() {
	local mode=${1:-null}
	CONSOLE_SOCKET=$ROOT/tty-$RANDOM.sock
	local args=(--mode "$mode" "$CONSOLE_SOCKET")
	[ "$mode" = single ] && args=(--no-stdin "${args[@]}")
	setsid "$RECVTTY" "${args[@]}" </dev/null >>"$ROOT/tty.out" 2>&1 3>&- &
	BG_PIDS+=($!)
	disown $!
	wait_for 50 0.1 test -S "$CONSOLE_SOCKET" || fail "recvtty did not start"
}

# ---------------------------------------------------------------- misc

port_listening() {
	ss -Hltn "sport = :$1" | grep -q .
}

# True when someone holds an flock on $1 (we can't take it without waiting).
lock_is_held() {
	! flock -n "$1" true
}

container_stopped() {
	local s
	s=$(__runcr state "$1" 2>/dev/null | jq -r .status) || return 0
	[ -z "$s" ] || [ "$s" = stopped ]
}

# True when process $1 is gone (or a zombie nobody has reaped yet).
pid_gone() {
	local s
	s=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 0
	[ -z "$s" ] || [ "$s" = Z ] || [ "$s" = X ]
}

# True once recvtty (single mode) has passed on a counter line above $1.
tty_counter_above() {
	local last
	last=$(tr -d '\r' <"$ROOT/tty.out" | grep -E '^[0-9]+$' | tail -1)
	[ -n "$last" ] && [ "$last" -gt "$1" ]
}
