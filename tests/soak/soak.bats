#!/usr/bin/env bats
# Soak: SOAK_CYCLES (default 200) checkpoint/restore cycles of one container
# that holds a memory-checking workload and a live TCP connection to a peer
# outside it. After every cycle the memory must be intact, the connection
# must still carry data both ways, and the host must hold exactly what it
# held after the first cycle: mounts, cgroup directories, open fds of the
# container's processes, state directories, and no leftover runcr, runc or
# CRIU processes.
#
#   RUNCR=/abs/runcr ROOTFS=/abs/rootfs SOAK_CYCLES=10 bats --tap tests/soak

# shellcheck disable=SC2153 # STATE, ROOT, CT, ... are set by helpers
load ../integration/helpers

: "${SOAK_CYCLES:=200}"

# The container: a writer sends a numbered line every 0.1 s over a TCP
# connection to the peer, which echoes it back; a reader checks that the
# echoes come back in order and publishes "LAST OK|BROKEN|EOF" in /tmp/echo.
# Init is tests/bench/memhog holding SOAK_MIB MiB in a pattern it re-checks
# on SIGUSR1. (Not the awk checker of use_memory_workload: its system()
# is a vfork, and a dump that freezes the container between that vfork and
# the exec times out: CRIU seizes the child, and the parent, waiting for the
# child in the kernel, never stops for CRIU.)
# shellcheck disable=SC2016 # expanded by the container's shell
SOAK_SH='mkfifo /tmp/tcp.in
(i=0; while :; do i=$((i + 1)); echo "$i"; sleep 0.1; done) >/tmp/tcp.in &
nc 127.0.0.1 5000 </tmp/tcp.in | (p=0 s=OK
	while read -r n; do
		[ "$n" = $((p + 1)) ] || s=BROKEN
		p=$n
		echo "$p $s" >/tmp/echo.new
		mv /tmp/echo.new /tmp/echo
	done
	echo "$p EOF" >/tmp/echo) &
exec /memhog -mib "$SOAK_MIB" -seed 11 -state /tmp/hog </dev/null'
: "${SOAK_MIB:=64}"
MEMHOG=$BUILD_DIR/memhog

# hog_field NAME: a key's value in memhog's last state line.
hog_field() {
	tr ' ' '\n' <"$BUNDLE/rootfs/tmp/hog" 2>/dev/null | sed -n "s/^$1=//p"
}

hog_checked_past() {
	[ "$(hog_field check)" -gt "$1" ]
}

# check_memory: memhog (the same process: same token) re-checks every word
# of its memory and finds it intact.
check_memory() {
	local check
	check=$(hog_field check)
	kill -USR1 "$(container_pid "$CT")" || return
	wait_for 300 0.05 hog_checked_past "$check" || fail "memhog did not re-check its memory" || return
	[ "$(hog_field token)" = "$HOG_TOKEN" ] || fail "memhog's token changed: it restarted" || return
	[ "$(hog_field result)" = OK ] || fail "memhog found $(hog_field bad) bad words: $(cat "$BUNDLE/rootfs/tmp/hog")"
}

# Numbers the peer got, in a row from 1? Prints the last one.
peer_contiguous() {
	awk 'NR != $1 { print "line " NR ": " $1; bad = 1; exit } { last = $1 }
		END { if (!bad) print last + 0; exit bad }' "$PEER_LOG"
}

echo_last() {
	local n s
	read -r n s <"$BUNDLE/rootfs/tmp/echo" 2>/dev/null || return 1
	[ "$s" = OK ] || fail "the echo stream says $n $s"
	echo "$n"
}

# Both directions moved on past ($1 peer, $2 echo).
tcp_past() {
	local p e
	p=$(peer_contiguous) && e=$(echo_last) && [ "$p" -gt "$1" ] && [ "$e" -gt "$2" ]
}

# Processes of the container's pids cgroup, but not the short-lived ones
# its loops fork (sleep, mv).
ct_procs() {
	local p c
	while read -r p; do
		c=$(cat "/proc/$p/comm" 2>/dev/null) || continue
		case $c in sleep | mv) ;; *) echo "$p" ;; esac
	done <"$(cgroup_dir "$(container_pid "$CT")")/cgroup.procs"
}

# One line of what the host holds for this container:
#   mounts=N cgroups=N ct_procs=N ct_fds=N state=N leftover=N leftover_fds=N
# mounts: host mount table lines of our test directory, container id or
# netns (CRIU's own temporary mounts can't be told from those of other
# CRIUs on the host: host_info prints them); cgroups: cgroup directories named after the id;
# ct_procs/ct_fds: the container's long-lived processes and their open fds;
# state: entries under --root; leftover: runcr, runc and criu processes
# working for this test (argv naming our root, or fds/cwd in our directory),
# and their open fds.
resources() {
	local mounts cgroups procs=0 fds=0 state p n left=0 left_fds=0
	mounts=$(awk -v r="$ROOT/" -v c="/$CT" -v n="/run/netns/$NS" \
		'index($4 "/", r) == 1 || index($5 "/", r) == 1 || substr($4, length($4) - length(c) + 1) == c ||
		index($4, c "/") || $5 == n { k++ } END { print k + 0 }' /proc/self/mountinfo)
	cgroups=$(find /sys/fs/cgroup -maxdepth 5 -type d -name "$CT" 2>/dev/null | wc -l)
	for p in $(ct_procs); do
		# Not the echo loop's /tmp/echo.new, open for an instant each line.
		n=$(find "/proc/$p/fd" -mindepth 1 -maxdepth 1 ! -lname '*/echo.new' 2>/dev/null | wc -l)
		procs=$((procs + 1)) fds=$((fds + n))
	done
	state=$(find "$STATE" -mindepth 1 -maxdepth 2 | wc -l)
	for p in $(pgrep -x 'runcr|runc|criu|runc:\[.*\]'); do
		if tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline" | grep -qF -- "$STATE" ||
			find "/proc/$p/cwd" "/proc/$p/fd" -maxdepth 1 -lname "$ROOT/*" 2>/dev/null | grep -q .; then
			left=$((left + 1))
			left_fds=$((left_fds + $(find "/proc/$p/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)))
		fi
	done
	echo "mounts=$mounts cgroups=$cgroups ct_procs=$procs ct_fds=$fds state=$state leftover=$left leftover_fds=$left_fds"
}

# For the record, not compared: the whole host mount table and the mounts
# and processes of any CRIU on the host.
host_info() {
	echo "host: mountinfo=$(wc -l </proc/self/mountinfo) criu_mounts=$(grep -c criu /proc/self/mountinfo) criu_procs=$(pgrep -xc criu)"
}

# Median and maximum of numbers on stdin.
med_max() {
	sort -n | awk '{ a[NR] = $1 } END { printf "median %d ms, max %d ms", a[int((NR + 1) / 2)], a[NR] }'
}

@test "soak: $SOAK_CYCLES checkpoint/restore cycles keep memory and a TCP connection, and leak nothing" {
	requires netns criu_inet host_cmd socat
	setup_netns
	PEER_LOG=$ROOT/peer.txt
	: >"$PEER_LOG"
	# The peer: outside the container, in its network namespace; echoes
	# each line back and keeps a copy.
	background ip netns exec "$NS" socat TCP-LISTEN:5000,bind=127.0.0.1,reuseaddr "SYSTEM:exec tee -a $PEER_LOG"
	wait_for 50 0.1 eval "ip netns exec $NS ss -Hltn 'sport = :5000' | grep -q ." || fail "the peer is not listening"
	go_build_once "$MEMHOG" ./tests/bench/memhog || fail "building tests/bench/memhog failed (see $TEST_LOG)"
	cp "$MEMHOG" "$BUNDLE/rootfs/memhog"
	printf '%s\n' "$SOAK_SH" >"$BUNDLE/rootfs/soak.sh"
	# shellcheck disable=SC2016 # a jq variable
	update_config --arg m "SOAK_MIB=$SOAK_MIB" '.process.env += [$m]'
	set_args sh /soak.sh
	run_detached
	wait_for 300 0.1 test -s "$BUNDLE/rootfs/tmp/hog" || fail "memhog never got ready"
	HOG_TOKEN=$(hog_field token)
	check_memory
	wait_for 100 0.1 tcp_past 3 3 || fail "no echo over TCP: peer $(peer_contiguous), echo $(cat "$BUNDLE/rootfs/tmp/echo" 2>/dev/null)"

	IMG=$ROOT/image
	CK_MS=() RS_MS=() BASE=
	local i failures=0
	echo "# soak: $SOAK_CYCLES cycles of $CT; memhog with $SOAK_MIB MiB, TCP to a peer outside the container in netns $NS" >&3
	for ((i = 1; i <= SOAK_CYCLES; i++)); do
		if ! soak_cycle "$i"; then
			failures=$((failures + 1))
			break
		fi
	done
	echo "# soak summary: $((i - 1)) of $SOAK_CYCLES cycles done, $failures failures; checkpoint $(printf '%s\n' "${CK_MS[@]}" | med_max); restore $(printf '%s\n' "${RS_MS[@]}" | med_max); resources after cycle 1: ${BASE:-none}; at the end: $(resources 2>/dev/null)" >&3
	[ "$failures" -eq 0 ]
	[ "$i" -gt "$SOAK_CYCLES" ]
}

# soak_cycle N: one checkpoint and restore, then the checks. Runs as an if
# condition (no errexit), so every check returns explicitly.
soak_cycle() {
	local i=$1 t0 ck rs peer echo now
	rm -rf "$IMG"
	t0=$EPOCHREALTIME
	runcr checkpoint --tcp-established --image-path "$IMG" "$CT"
	[ "$status" -eq 0 ] || fail "cycle $i: checkpoint failed" || return
	ck=$(ms_since "$t0")
	peer=$(peer_contiguous) || fail "cycle $i: the peer's stream has a gap: $peer" || return
	echo=$(echo_last) || fail "cycle $i: no echo state" || return
	t0=$EPOCHREALTIME
	runcr_with_pipes restore -d --tcp-established --image-path "$IMG" "$CT" || fail "cycle $i: restore failed" || return
	rs=$(ms_since "$t0")
	# Memory intact in the same process; new data, in order, both ways
	# over the connection.
	check_memory || fail "cycle $i: memory check failed" || return
	wait_for 100 0.1 tcp_past "$peer" "$echo" ||
		fail "cycle $i: TCP stopped: peer at $(peer_contiguous) (was $peer), echo $(cat "$BUNDLE/rootfs/tmp/echo") (was $echo)" || return
	now=$(resources)
	[ -n "$BASE" ] || BASE=$now
	CK_MS+=("$ck") RS_MS+=("$rs")
	echo "# cycle $i: checkpoint $ck ms, restore $rs ms; memhog check $(hog_field check) $(hog_field result), peer $(peer_contiguous), echo $(echo_last); $now; $(host_info)" >&3
	log "cycle $i: $now"
	[ "$now" = "$BASE" ] || fail "cycle $i: the host's resources changed: after cycle 1: $BASE; now: $now"
}

ms_since() {
	local now=${EPOCHREALTIME/[.,]/} then=${1/[.,]/}
	echo $(((now - then) / 1000))
}
