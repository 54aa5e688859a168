#!/usr/bin/env bats
# Nothing lost: an interrupted or concurrent checkpoint leaves the
# container running, thawed and intact; images are private.

load helpers

# Size of the memory hog the interruption tests dump: 300 MiB here, so that
# a dump takes long enough to be interrupted in the middle; `make
# test-large` runs the same tests with 1024.
: "${RUNCR_TEST_HOG_MIB:=300}"
MEMHOG=$BUILD_DIR/memhog

# The container: tests/bench/memhog as init, holding RUNCR_TEST_HOG_MIB MiB
# in a pattern it re-checks on SIGUSR1. (Not the awk checker of
# use_memory_workload: its system() is a vfork, and a dump that freezes the
# container between that vfork and the exec fails after CRIU's 10 s
# timeout, "Unseizable non-zombie ... state D": the parent waits for its
# ptrace-stopped child and never stops for CRIU.)
use_big_workload() {
	go_build_once "$MEMHOG" ./tests/bench/memhog || fail "building tests/bench/memhog failed (see $TEST_LOG)"
	local need avail
	need=$((RUNCR_TEST_HOG_MIB * 2 + 256))
	avail=$(awk '$1 == "MemAvailable:" { print int($2 / 1024) }' /proc/meminfo)
	[ "$avail" -ge "$need" ] ||
		skip "needs ${need} MiB of free memory (a ${RUNCR_TEST_HOG_MIB} MiB container and its images), the host has ${avail} MiB"
	log "memory hog: ${RUNCR_TEST_HOG_MIB} MiB; images in $ROOT ($(df --output=fstype "$ROOT" | tail -1))"
	cp "$MEMHOG" "$BUNDLE/rootfs/memhog"
	set_args /memhog -mib "$RUNCR_TEST_HOG_MIB" -seed 7 -state /tmp/hog
	run_detached
	wait_for 600 0.1 test -s "$BUNDLE/rootfs/tmp/hog" || fail "the memory hog never got ready"
	read -r HOG <"$BUNDLE/rootfs/tmp/hog"
	log "memory hog ready: $HOG"
	expect_hog_intact
}

# hog_field NAME: a key's value in the hog's last state line.
hog_field() {
	tr ' ' '\n' <"$BUNDLE/rootfs/tmp/hog" | sed -n "s/^$1=//p"
}

hog_checked_past() {
	[ "$(hog_field check)" -gt "$1" ]
}

# Busy-waits (no fork: a dump is quick) until CRIU writes memory into $1.
wait_for_pages() {
	local end=$((SECONDS + 30)) f
	while ((SECONDS < end)); do
		for f in "$1"/pages-*.img; do
			[ -s "$f" ] && return 0
		done
	done
	return 1
}

# expect_hog_intact: the hog (the same process: same token) runs, re-checks
# its memory when asked and finds it intact.
expect_hog_intact() {
	local token check
	token=$(sed -n 's/.*token=\([0-9a-f]*\).*/\1/p' <<<"$HOG")
	check=$(hog_field check)
	kill -USR1 "$(container_pid "$CT")" || fail "can't signal the memory hog"
	wait_for 300 0.1 hog_checked_past "$check" || fail "the memory hog did not re-check its memory"
	log "memory hog: $(cat "$BUNDLE/rootfs/tmp/hog")"
	[ "$(hog_field token)" = "$token" ] || fail "the memory hog restarted instead of carrying on"
	[ "$(hog_field result)" = OK ] || fail "the memory hog found $(hog_field bad) bad words"
}

# wait_for_dump prints the pid of the CRIU dumping the container (its
# process title is "criu: dump --rpc -t PID ...", cut to the length of the
# original command line, so match on the container's pid only).
wait_for_dump() {
	local _ pid
	for _ in $(seq 300); do
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
	local who=$1 sig=$2 img=$ROOT/image criu t0 ms rc=0
	CT_PID=$(container_pid "$CT")
	start_checkpoint --image-path "$img" "$CT"
	criu=$(wait_for_dump) || fail "no CRIU dump started: $(cat "$ROOT/ckpt.out")"
	[ "$(readlink "/proc/$RPID/exe")" = "$(readlink -f "$RUNCR")" ] || fail "pid $RPID is not runcr"
	[ "$(ps -o pgid= "$criu" | tr -d ' ')" = "$RPID" ] || fail "CRIU is not in runcr's process group"
	# In the middle of writing memory. CRIU writes hundreds of MiB in well
	# under a second: stop it there so that the signal lands mid-dump even
	# on a loaded host, and let it go on once the signal is sent.
	wait_for_pages "$img" || fail "CRIU never wrote memory"
	kill -STOP "$criu"
	! post_dump_seen || fail "CRIU had finished the dump: too late to interrupt"
	log "interrupting after $(pages_kib "$img") KiB of pages"
	t0=$EPOCHREALTIME
	case $who in
	criu) kill "-$sig" "$criu" ;;
	runcr) kill "-$sig" "$RPID" ;;
	group) kill "-$sig" -- "-$RPID" ;;
	esac
	kill -CONT "$criu" 2>/dev/null || true
	wait "$RPID" || rc=$?
	log "checkpoint interrupted ($who, SIG$sig) after $(ms_since "$t0") ms: status $rc: $(cat "$ROOT/ckpt.out")"
	[ "$rc" -ne 0 ] || fail "the checkpoint was not interrupted (it finished first)"
	# Within seconds the container runs again, thawed, with its memory.
	wait_for 200 0.05 running_and_thawed || fail "container not running and thawed 10 s after SIG$sig (freezer: $(freezer_state))"
	ms=$(ms_since "$t0")
	log "running and thawed $ms ms after SIG$sig"
	echo "# ${RUNCR_TEST_HOG_MIB} MiB, SIG$sig to $who: running and thawed after $ms ms" >&3
	wait_for 100 0.1 bash -c "! pgrep -f -- 'dump --rpc -t $CT_PID( |\$)'" || fail "CRIU still running"
	expect_hog_intact
	expect_no_complete_manifest "$img"
	# Nothing stuck: a new checkpoint and a restore carry on.
	runcr checkpoint --image-path "$ROOT/image2" "$CT"
	[ "$status" -eq 0 ] || fail "the checkpoint after the interruption failed"
	restore_detached "$CT" --image-path "$ROOT/image2"
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

@test "SIGKILL to runcr's process group (runcr and CRIU at once) in the middle of a dump leaves the container running and thawed" {
	use_big_workload
	interrupt_dump group KILL
}

@test "two checkpoints of one container at once: the second fails at once as busy, the first succeeds" {
	use_big_workload
	local img=$ROOT/image1 rpid
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
	expect_hog_intact
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

# libcontainer creates this file in the container's state directory when
# CRIU reports "post-dump": the dump is complete and, once runcr answers,
# CRIU kills the container.
post_dump_seen() {
	[ -e "$STATE/$CT/checkpoint" ]
}

@test "SIGTERM to runcr once CRIU has dumped everything: nothing lost (the checkpoint completes or the container runs)" {
	use_big_workload
	local img=$ROOT/image rc=0 end
	CT_PID=$(container_pid "$CT")
	start_checkpoint --image-path "$img" "$CT"
	end=$((SECONDS + 60))
	while ! post_dump_seen && ((SECONDS < end)); do :; done
	kill -TERM "$RPID"
	post_dump_seen || fail "CRIU never reported post-dump"
	wait "$RPID" || rc=$?
	log "checkpoint got SIGTERM after post-dump: status $rc: $(cat "$ROOT/ckpt.out")"
	wait_for 100 0.1 bash -c "! pgrep -f -- 'dump --rpc -t $CT_PID( |\$)'" || fail "CRIU still running"
	if [ "$(__runcr state "$CT" 2>/dev/null | jq -r .status)" = running ]; then
		log "the container kept running"
		[ "$rc" -ne 0 ] || fail "runcr exited 0 but the container runs on"
		[ "$(freezer_state)" = THAWED ] || fail "container left frozen"
		expect_hog_intact
		expect_no_complete_manifest "$img"
		return
	fi
	# The container is gone: then the checkpoint must be whole and usable.
	log "the container was dumped: manifest $(jq -c '{state}' "$img/runcr-manifest.json" 2>&1)"
	[ "$(jq -r .state "$img/runcr-manifest.json")" = complete ] ||
		fail "the container is gone and its checkpoint is not marked complete: it can't be restored"
	restore_detached "$CT" --image-path "$img"
	expect_hog_intact
}
