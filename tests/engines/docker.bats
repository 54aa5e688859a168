#!/usr/bin/env bats
# Debian's Docker 20.10 (dockerd --experimental, docker checkpoint) with runcr
# as a runtime registered in daemon.json, and every test run a second time
# with runc v1.4.4 itself ("runcref") as the reference: the same assertions
# must hold for both. dockerd runs privately for this file (docker.bash).

load helpers
load docker

setup_file() {
	requires_root
	requires_cmd /usr/sbin/dockerd /usr/bin/docker containerd containerd-shim-runc-v2
	docker_start
}

teardown_file() {
	engines_save_argv_log "docker"
	docker_stop
}

setup() {
	requires_root
	requires_cmd /usr/sbin/dockerd /usr/bin/docker
	MARK=$(argv_mark)
}

teardown() {
	log "--- runtime calls in this test:"
	argv_log_since "$MARK" >&2 || true
	[ -n "${DK_CTR:-}" ] && timeout 60 "${DOCKER[@]}" rm -f "$DK_CTR" >/dev/null 2>&1
	tail -40 "$DOCKER_DIR/dockerd.log" | grep -iE 'level=(error|warning).*(checkpoint|restore|criu)' >&2 || true
}

# Runs the body of a test with runtime $1 (runcr or runcref).
for_runtime() {
	# shellcheck disable=SC2034 # read by docker.bash
	DK_RUNTIME=$1
	DK_CTR=dk-$BATS_TEST_NUMBER-$1
}

# checkpoint create (stops the container), ls, start --checkpoint: the
# workload goes on from its counter with its memory; the runtime got the
# calls; docker logs holds only the workload's lines, continuing.
check_checkpoint_start() {
	docker_run_workload "$DK_CTR"
	wait_state docker_reader 2
	local before=$COUNTER md5=$MD5
	dk checkpoint create "$DK_CTR" cp1
	[ "$status" -eq 0 ] || fail "checkpoint create failed"
	argv_since "$MARK" | grep -E ' checkpoint ' >/dev/null || fail "the runtime got no checkpoint"
	dk inspect -f '{{.State.Running}} {{.State.Paused}}' "$DK_CTR"
	[ "$output" = "false false" ] || fail "the container still runs after checkpoint create (no --leave-running)"
	dk checkpoint ls "$DK_CTR"
	[ "$status" -eq 0 ] && grep -qx cp1 <<<"$(tail -n +2 <<<"$output")" || fail "checkpoint ls does not list cp1"
	docker_start_checkpoint "$DK_CTR" cp1
	argv_since "$MARK" | grep -E ' restore ' >/dev/null || fail "the runtime got no restore"
	assert_continues docker_reader "$before" "$md5"
	docker_logs_clean "$DK_CTR"
	# The log holds the lines from before the checkpoint and after the
	# restore: the counter never starts again from 1.
	[ "$(grep -c '^counter=1 ' <<<"$DOCKER_LOG")" -eq 1 ] || fail "counter=1 logged more than once: a restart"
	grep -q "^counter=$((before + 1)) " <<<"$DOCKER_LOG" || grep -q "^counter=$((before + 2)) " <<<"$DOCKER_LOG" ||
		fail "no line right after the checkpointed counter $before in docker logs"
	dk checkpoint rm "$DK_CTR" cp1
	[ "$status" -eq 0 ] || fail "checkpoint rm failed"
	dk checkpoint ls "$DK_CTR"
	! grep -qx cp1 <<<"$(tail -n +2 <<<"$output")" || fail "cp1 still listed after rm"
}

@test "docker runcr: checkpoint create/ls/rm, start --checkpoint continues; logs only the workload's" {
	for_runtime runcr
	check_checkpoint_start
}

@test "docker runc (reference): checkpoint create/ls/rm, start --checkpoint continues; logs only the workload's" {
	for_runtime runcref
	check_checkpoint_start
}

# --leave-running: running and not paused after the checkpoint, counting on;
# then stopped, started from that checkpoint, it goes on from there.
check_leave_running() {
	docker_run_workload "$DK_CTR"
	wait_state docker_reader 2
	local before=$COUNTER md5=$MD5
	dk checkpoint create --leave-running "$DK_CTR" cp1
	[ "$status" -eq 0 ] || fail "checkpoint create --leave-running failed"
	argv_since "$MARK" | grep -E ' checkpoint .*--leave-running' >/dev/null || fail "no --leave-running given to the runtime"
	dk inspect -f '{{.State.Running}} {{.State.Paused}} {{.State.Status}}' "$DK_CTR"
	[ "$output" = "true false running" ] || fail "not running, or paused, after --leave-running"
	# Counting on past what it was when the checkpoint returned.
	parse_state "$(docker_reader)" || fail "no state after the checkpoint"
	wait_state docker_reader "$COUNTER"
	[ "$MEM" = OK ] && [ "$MD5" = "$md5" ] || fail "workload changed after --leave-running"
	# Docker keeps the container's rootfs: /tmp/state still holds the last
	# counter written before the stop, which the restored workload (going on
	# from the checkpoint's, lower) only passes after a while: wait for that.
	# Read after the stop (docker cp works on a stopped container).
	local last
	dk stop -t 1 "$DK_CTR"
	parse_state "$("${DOCKER[@]}" cp "$DK_CTR:/tmp/state" - | tar -xO)" || fail "no state after the stop"
	last=$COUNTER
	docker_start_checkpoint "$DK_CTR" cp1
	assert_continues docker_reader "$last" "$md5"
	# ... and docker logs shows it went on from the checkpoint: counter=$last
	# is there twice (before the stop and after the restore), counter=1 once.
	docker_logs_clean "$DK_CTR"
	[ "$(grep -c '^counter=1 ' <<<"$DOCKER_LOG")" -eq 1 ] || fail "counter=1 logged more than once: a restart"
	[ "$(grep -c "^counter=$last " <<<"$DOCKER_LOG")" -eq 2 ] || fail "counter=$last not logged twice (before the stop, after the restore)"
}

@test "docker runcr: checkpoint create --leave-running keeps it running, not paused" {
	for_runtime runcr
	check_leave_running
}

@test "docker runc (reference): checkpoint create --leave-running keeps it running, not paused" {
	for_runtime runcref
	check_leave_running
}

# --checkpoint-dir: create writes the checkpoint there; start --checkpoint-dir
# is refused by Docker itself ("custom checkpointdir is not supported",
# docker/cli#3008), whatever the runtime.
check_checkpoint_dir() {
	local dir=$BATS_TEST_TMPDIR/ckdir
	mkdir -p "$dir"
	docker_run_workload "$DK_CTR"
	wait_state docker_reader 2
	dk checkpoint create --checkpoint-dir "$dir" "$DK_CTR" cpd
	[ "$status" -eq 0 ] || fail "checkpoint create --checkpoint-dir failed"
	ls -lR "$dir" >&2
	[ -d "$dir/cpd" ] || fail "no $dir/cpd"
	find "$dir/cpd" -name 'pages-*.img' | grep -q . || fail "no CRIU pages image under $dir/cpd"
	dk checkpoint ls --checkpoint-dir "$dir" "$DK_CTR"
	grep -qx cpd <<<"$(tail -n +2 <<<"$output")" || fail "checkpoint ls --checkpoint-dir does not list cpd"
	dk start --checkpoint cpd --checkpoint-dir "$dir" "$DK_CTR"
	[ "$status" -ne 0 ] || fail "docker start --checkpoint-dir succeeded: the documented limit is gone?"
	[[ $output == *"custom checkpointdir is not supported"* ]] || fail "not Docker's documented refusal"
	dk checkpoint rm --checkpoint-dir "$dir" "$DK_CTR" cpd
	[ "$status" -eq 0 ] && [ ! -e "$dir/cpd" ] || fail "checkpoint rm --checkpoint-dir left $dir/cpd"
}

@test "docker runcr: checkpoint create --checkpoint-dir writes there; start --checkpoint-dir refused by Docker" {
	for_runtime runcr
	check_checkpoint_dir
}

@test "docker runc (reference): checkpoint create --checkpoint-dir writes there; start --checkpoint-dir refused by Docker" {
	for_runtime runcref
	check_checkpoint_dir
}

# Two rounds: checkpoint the restored container and restore it again.
check_two_rounds() {
	docker_run_workload "$DK_CTR"
	wait_state docker_reader 2
	local before=$COUNTER md5=$MD5
	dk checkpoint create "$DK_CTR" r1
	[ "$status" -eq 0 ] || fail "first checkpoint failed"
	docker_start_checkpoint "$DK_CTR" r1
	assert_continues docker_reader "$before" "$md5"
	before=$COUNTER
	dk checkpoint create "$DK_CTR" r2
	[ "$status" -eq 0 ] || fail "second checkpoint failed"
	docker_start_checkpoint "$DK_CTR" r2
	assert_continues docker_reader "$before" "$md5"
	docker_logs_clean "$DK_CTR"
}

@test "docker runcr: a restored container checkpointed and restored again" {
	for_runtime runcr
	check_two_rounds
}

@test "docker runc (reference): a restored container checkpointed and restored again" {
	for_runtime runcref
	check_two_rounds
}
