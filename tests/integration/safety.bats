#!/usr/bin/env bats
# Nothing lost: an interrupted or concurrent checkpoint leaves the
# container running, thawed and intact; images are private.

load helpers

# A memory workload plus ~300 MB held by a second process, so that a dump
# takes long enough to be interrupted in the middle.
use_big_workload() {
	use_memory_workload
	cat >"$BUNDLE/rootfs/big.sh" <<'EOF'
(a=$(head -c 300000000 /dev/zero | tr '\0' x); touch /tmp/hog-ready; exec sleep 1000000) &
exec awk -f /memtest.awk
EOF
	set_args sh /big.sh
	start_workload
	local i
	for i in $(seq 100); do
		[ -e "$BUNDLE/rootfs/tmp/hog-ready" ] && return 0
		sleep 0.1
	done
	fail "the memory hog never got ready"
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

# interrupt_dump WHO SIGNAL: starts a checkpoint, sends SIGNAL to runcr or
# to its CRIU in the middle of the dump, and checks that nothing was lost.
interrupt_dump() {
	local who=$1 sig=$2 token=$TOKEN img=$ROOT/image criu rpid
	CT_PID=$(container_pid "$CT")
	# runcr itself, not a wrapper shell: $! must be runcr's pid.
	"$RUNCR" --root "$STATE" checkpoint --image-path "$img" "$CT" >"$ROOT/ckpt.out" 2>&1 &
	rpid=$!
	criu=$(wait_for_dump) || fail "no CRIU dump started"
	sleep 0.1
	if [ "$who" = criu ]; then
		kill "-$sig" "$criu"
	else
		kill "-$sig" "$rpid"
	fi
	local rc=0
	wait "$rpid" || rc=$?
	log "checkpoint interrupted ($who, SIG$sig): status $rc: $(cat "$ROOT/ckpt.out")"
	[ "$rc" -ne 0 ] || fail "the checkpoint was not interrupted (it finished first)"
	# Within seconds the container runs again, thawed, with its memory.
	local i
	for i in $(seq 50); do
		pgrep -f -- "dump --rpc -t $CT_PID( |\$)" >/dev/null || break
		sleep 0.1
	done
	expect_state "$CT" running
	[ "$(freezer_state)" = THAWED ] || fail "container left frozen"
	read_state
	expect_progress "$CT" "$COUNTER" "$token"
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

# (SIGINT is not tested here: bash makes background jobs ignore it, and
# a program started with SIGINT ignored keeps it ignored.)
@test "SIGTERM to runcr in the middle of a dump leaves the container running and thawed" {
	use_big_workload
	interrupt_dump runcr TERM
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
