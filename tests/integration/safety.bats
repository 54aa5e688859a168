#!/usr/bin/env bats
# Nothing lost: an interrupted or concurrent checkpoint leaves the
# container running, thawed and intact; images are private.

load helpers

# Size of the memory hog the interruption tests dump: 300 MiB here, so that
# a dump takes long enough to be interrupted in the middle; `make
# test-large` runs the same tests with 1024.
: "${RUNCR_TEST_HOG_MIB:=300}"
MEMHOG=$BUILD_DIR/memhog

# A memory workload plus RUNCR_TEST_HOG_MIB MiB held by tests/bench/memhog,
# which re-checks every word of it on SIGUSR1.
use_big_workload() {
	go_build_once "$MEMHOG" ./tests/bench/memhog || fail "building tests/bench/memhog failed (see $TEST_LOG)"
	local need avail
	need=$((RUNCR_TEST_HOG_MIB * 2 + 256))
	avail=$(awk '$1 == "MemAvailable:" { print int($2 / 1024) }' /proc/meminfo)
	[ "$avail" -ge "$need" ] ||
		skip "needs ${need} MiB of free memory (a ${RUNCR_TEST_HOG_MIB} MiB container and its images), the host has ${avail} MiB"
	log "memory hog: ${RUNCR_TEST_HOG_MIB} MiB; images in $ROOT ($(df --output=fstype "$ROOT" | tail -1))"
	cp "$MEMHOG" "$BUNDLE/rootfs/memhog"
	use_memory_workload
	cat >"$BUNDLE/rootfs/big.sh" <<EOF
/memhog -mib $RUNCR_TEST_HOG_MIB -seed 7 -state /tmp/hog </dev/null &
exec awk -f /memtest.awk
EOF
	set_args sh /big.sh
	start_workload
	wait_for 600 0.1 test -s "$BUNDLE/rootfs/tmp/hog" || fail "the memory hog never got ready"
	read -r HOG <"$BUNDLE/rootfs/tmp/hog"
	log "memory hog ready: $HOG"
}

# hog_field NAME: a key's value in the hog's last state line.
hog_field() {
	tr ' ' '\n' <"$BUNDLE/rootfs/tmp/hog" | sed -n "s/^$1=//p"
}

hog_checked_past() {
	[ "$(hog_field check)" -gt "$1" ]
}

pages_at_least() {
	[ "$(pages_kib "$1")" -ge "$2" ]
}

# expect_hog_intact: asks the hog (same token as before) to re-check its
# memory and waits for an OK.
expect_hog_intact() {
	local token check
	token=$(sed -n 's/.*token=\([0-9a-f]*\).*/\1/p' <<<"$HOG")
	check=$(hog_field check)
	runcr exec "$CT" sh -c 'kill -USR1 $(pidof memhog)'
	[ "$status" -eq 0 ] || fail "can't signal the memory hog"
	wait_for 300 0.1 hog_checked_past "$check" || fail "the memory hog did not re-check its memory"
	log "memory hog: $(cat "$BUNDLE/rootfs/tmp/hog")"
	[ "$(hog_field token)" = "$token" ] || fail "the memory hog restarted instead of carrying on"
	[ "$(hog_field result)" = OK ] || fail "the memory hog found $(hog_field bad) bad words"
}

# wait_for_dump prints the pid of the CRIU dumping the container (its
# process title is "criu: dump --rpc -t PID ...", cut to the length of the
# original command line, so match on the container's pid only).
wait_for_dump() {
	local i pid
	for i in $(seq 300); do
		pid=$(pgrep -f -- "dump --rpc -t $CT_PID( |\$)" | head -n1 || true)
		[ -n "$pid" ] && echo "$pid" && return 0
		sleep 0.01
	done
	return 1
}

freezer_state() {
	local pid cg
	pid=$(container_pid "$CT")
	cg=$(awk -F: '$2 == "freezer" {print $3}' "/proc/$pid/cgroup")
	if [ -n "$cg" ] && [ -r "/sys/fs/cgroup/freezer$cg/freezer.state" ]; then
		cat "/sys/fs/cgroup/freezer$cg/freezer.state"
	else
		# cgroup v2: cgroup.freeze is 0 or 1.
		cg=$(awk -F: '$1 == "0" {print $3}' "/proc/$pid/cgroup")
		[ "$(cat "/sys/fs/cgroup$cg/cgroup.freeze" 2>/dev/null || cat "/sys/fs/cgroup/unified$cg/cgroup.freeze")" = 0 ] && echo THAWED || echo FROZEN
	fi
}

running_and_thawed() {
	[ "$(__runcr state "$CT" 2>/dev/null | jq -r .status)" = running ] && [ "$(freezer_state)" = THAWED ]
}

# Milliseconds since $1 (an EPOCHREALTIME).
ms_since() {
	local now=${EPOCHREALTIME/[.,]/} then=${1/[.,]/}
	echo $(((now - then) / 1000))
}

# start_checkpoint ARGS: `runcr checkpoint ARGS` in the background, as the
# leader of a process group of its own that its CRIU joins (like a shell's
# foreground job, which Ctrl-C signals as a whole), with SIGINT at its
# default: bash starts background jobs with SIGINT ignored, and an ignored
# signal stays ignored across exec. Sets RPID, runcr's pid.
start_checkpoint() {
	setsid env --default-signal=INT "$RUNCR" --root "$STATE" checkpoint "$@" >"$ROOT/ckpt.out" 2>&1 &
	RPID=$!
}

# interrupt_dump WHO SIGNAL: starts a checkpoint, sends SIGNAL to runcr, to
# its CRIU or to both (WHO=group, as Ctrl-C does) in the middle of the dump,
# and checks that nothing was lost: the container runs, thawed, within
# seconds, its memory intact; no manifest says complete and restore refuses
# an incomplete one; and a new checkpoint and restore work.
interrupt_dump() {
	local who=$1 sig=$2 token=$TOKEN img=$ROOT/image criu t0 ms rc=0
	CT_PID=$(container_pid "$CT")
	start_checkpoint --image-path "$img" "$CT"
	criu=$(wait_for_dump) || fail "no CRIU dump started: $(cat "$ROOT/ckpt.out")"
	[ "$(ps -o comm= "$RPID")" = runcr ] || fail "pid $RPID is not runcr"
	[ "$(ps -o pgid= "$criu" | tr -d ' ')" = "$RPID" ] || fail "CRIU is not in runcr's process group"
	# In the middle of writing memory: wait for the first 32 MiB of pages.
	wait_for 500 0.01 pages_at_least "$img" 32768 || log "pages not seen growing; interrupting anyway"
	log "interrupting after $(pages_kib "$img") KiB of pages"
	t0=$EPOCHREALTIME
	case $who in
	criu) kill "-$sig" "$criu" ;;
	runcr) kill "-$sig" "$RPID" ;;
	group) kill "-$sig" -- "-$RPID" ;;
	esac
	wait "$RPID" || rc=$?
	log "checkpoint interrupted ($who, SIG$sig) after $(ms_since "$t0") ms: status $rc: $(cat "$ROOT/ckpt.out")"
	[ "$rc" -ne 0 ] || fail "the checkpoint was not interrupted (it finished first)"
	# Within seconds the container runs again, thawed, with its memory.
	wait_for 200 0.05 running_and_thawed || fail "container not running and thawed 10 s after SIG$sig (freezer: $(freezer_state))"
	ms=$(ms_since "$t0")
	log "running and thawed $ms ms after SIG$sig"
	echo "# ${RUNCR_TEST_HOG_MIB} MiB, SIG$sig to $who: running and thawed after $ms ms" >&3
	wait_for 100 0.1 bash -c "! pgrep -f -- 'dump --rpc -t $CT_PID( |\$)'" || fail "CRIU still running"
	read_state
	expect_progress "$CT" "$COUNTER" "$token"
	expect_hog_intact
	expect_no_complete_manifest "$img"
	# Nothing stuck: a new checkpoint and a restore carry on.
	runcr checkpoint --image-path "$ROOT/image2" "$CT"
	[ "$status" -eq 0 ] || fail "the checkpoint after the interruption failed"
	read_state_file
	restore_detached "$CT" --image-path "$ROOT/image2"
	expect_progress "$CT" "$COUNTER" "$token"
	expect_hog_intact
}

# expect_no_complete_manifest DIR: an interrupted checkpoint leaves no
# manifest, or one saying incomplete, which restore refuses.
expect_no_complete_manifest() {
	local m=$1/runcr-manifest.json
	[ -e "$m" ] || {
		log "no manifest left in $1"
		return 0
	}
	log "manifest left: $(jq -c '{state, container_id}' "$m")"
	[ "$(jq -r .state "$m")" = incomplete ] || fail "the interrupted checkpoint left a manifest saying $(jq -r .state "$m")"
	runcr_with_pipes restore -d --image-path "$1" "$CT-copy" && fail "restore accepted an incomplete checkpoint"
	grep -q incomplete "$CT_OUT" || fail "restore did not say the checkpoint is incomplete"
	expect_state "$CT-copy" gone
}

@test "SIGKILL to CRIU in the middle of a dump leaves the container running and thawed" {
	use_big_workload
	interrupt_dump criu KILL
	grep -q "CRIU exited without answering" "$ROOT/ckpt.out"
}

@test "SIGKILL to runcr in the middle of a dump leaves the container running and thawed" {
	use_big_workload
	interrupt_dump runcr KILL
}

@test "SIGTERM to runcr in the middle of a dump leaves the container running and thawed" {
	use_big_workload
	interrupt_dump runcr TERM
}

@test "SIGINT to runcr in the middle of a dump leaves the container running and thawed" {
	use_big_workload
	interrupt_dump runcr INT
}

@test "SIGINT to runcr's process group (Ctrl-C) in the middle of a dump leaves the container running and thawed" {
	use_big_workload
	interrupt_dump group INT
}

@test "SIGTERM to runcr's process group in the middle of a dump leaves the container running and thawed" {
	use_big_workload
	interrupt_dump group TERM
}

@test "two checkpoints of one container at once: the second fails at once as busy, the first succeeds" {
	use_big_workload
	local token=$TOKEN img=$ROOT/image1 rpid
	CT_PID=$(container_pid "$CT")
	"$RUNCR" --root "$STATE" checkpoint --leave-running --image-path "$img" "$CT" >"$ROOT/first.out" 2>&1 &
	rpid=$!
	wait_for_dump >/dev/null || fail "no CRIU dump started"
	runcr checkpoint --leave-running --image-path "$ROOT/image2" "$CT"
	[ "$status" -ne 0 ]
	[[ "$output" == *busy* ]]
	[ ! -e "$ROOT/image2/inventory.img" ]
	wait "$rpid" || fail "the first checkpoint failed: $(cat "$ROOT/first.out")"
	[ -e "$img/inventory.img" ]
	expect_state "$CT" running
	[ "$(freezer_state)" = THAWED ]
	read_state
	expect_progress "$CT" "$COUNTER" "$token"
}

@test "checkpoint images are private: directory 0700, files 0600" {
	use_memory_workload
	start_workload
	runcr checkpoint --leave-running --image-path "$ROOT/image" "$CT"
	[ "$status" -eq 0 ]
	[ "$(stat -c %a "$ROOT/image")" = 700 ]
	run find "$ROOT/image" -type f -perm /077
	[ "$status" -eq 0 ]
	[ -z "$output" ] || fail "image files readable by others: $output"
}
