#!/usr/bin/env bats
# Debian's containerd (1.6, runc shim v2) driven with ctr, with runcr as the
# runc binary (ctr run --runc-binary). containerd runs privately for this
# file: own config, root, state and socket under the run's temp dir.

load helpers
load containerd

setup_file() {
	requires_root
	requires_cmd containerd ctr containerd-shim-runc-v2
	containerd_start
}

teardown_file() {
	engines_save_argv_log "containerd"
	containerd_stop
}

setup() {
	requires_root
	requires_cmd containerd ctr containerd-shim-runc-v2
	CTR_ID=ctr-$BATS_TEST_NUMBER
	MARK=$(argv_mark)
}

teardown() {
	log "--- runtime calls in this test:"
	argv_log_since "$MARK" >&2 || true
	timeout 30 "${CTR[@]}" tasks kill -s SIGKILL "$CTR_ID" >/dev/null 2>&1 || true
	sleep 0.5
	timeout 30 "${CTR[@]}" tasks delete -f "$CTR_ID" >/dev/null 2>&1 || true
	timeout 30 "${CTR[@]}" containers delete "$CTR_ID" >/dev/null 2>&1 || true
	timeout 30 "${CTR[@]}" images rm "localhost/ckpt-$CTR_ID:1" >/dev/null 2>&1 || true
	tail -30 "$CTRD_DIR/containerd.log" | grep -iE 'error|criu' >&2 || true
}

@test "ctr: c checkpoint --task --rw --image (pauses around it), c restore --live --rw; workload continues" {
	ctr_run_workload "$CTR_ID"
	wait_state ctr_reader 2
	local before=$COUNTER md5=$MD5 ref=localhost/ckpt-$CTR_ID:1
	ctr_ c checkpoint --task --rw --image "$CTR_ID" "$ref"
	[ "$status" -eq 0 ]
	# ctr pauses the task before the checkpoint and resumes it after.
	argv_since "$MARK" | grep -E '^--root [^ ]+ --log [^ ]+ --log-format json pause '
	argv_since "$MARK" | grep -E '^--root [^ ]+ --log [^ ]+ --log-format json checkpoint .*--leave-running'
	argv_since "$MARK" | grep -E '^--root [^ ]+ --log [^ ]+ --log-format json resume '
	# The task kept running (leave-running): the counter goes on.
	wait_state ctr_reader "$before"
	[ "$MEM" = OK ] && [ "$MD5" = "$md5" ]

	ctr_ t kill -s SIGKILL "$CTR_ID"
	sleep 1
	ctr_ t delete "$CTR_ID"
	ctr_ c delete "$CTR_ID"
	[ "$status" -eq 0 ]
	ctr_ c restore --live --rw "$CTR_ID" "$ref"
	[ "$status" -eq 0 ]
	argv_since "$MARK" | grep -E ' restore .*-no-subreaper|restore .*--detach'
	# Restored from the checkpoint: on from (at least) the count before it.
	assert_continues ctr_reader "$before" "$md5"
}

@test "ctr: t checkpoint leaves the task running with memory intact" {
	ctr_run_workload "$CTR_ID"
	wait_state ctr_reader 2
	local before=$COUNTER md5=$MD5
	ctr_ t checkpoint "$CTR_ID"
	[ "$status" -eq 0 ]
	argv_since "$MARK" | grep -E ' checkpoint .*--leave-running'
	wait_state ctr_reader "$before"
	[ "$MEM" = OK ] && [ "$MD5" = "$md5" ]
}

@test "ctr: t checkpoint --exit --image-path --work-path leaves CRIU's logs and stats where they are read" {
	ctr_run_workload "$CTR_ID"
	wait_state ctr_reader 2
	local img=$BATS_TEST_TMPDIR/img work=$BATS_TEST_TMPDIR/work
	ctr_ t checkpoint --exit --image-path "$img" --work-path "$work" "$CTR_ID"
	[ "$status" -eq 0 ]
	argv_since "$MARK" | grep -E " checkpoint --image-path $img --work-path $work "
	ls -l "$img" "$work" >&2
	[ -s "$work/dump.log" ] || fail "no dump.log in the work path"
	# CRIU writes stats-dump into its work dir; Podman's --print-stats reads
	# it from the --work-path it passed (the bundle).
	[ -s "$work/stats-dump" ] || [ -s "$img/stats-dump" ] || fail "no stats-dump in the work or image path"
}
