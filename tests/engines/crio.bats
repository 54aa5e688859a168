#!/usr/bin/env bats
# CRI-O v1.34.0 (enable_criu_support) driven with crictl 1.37.0, with runcr
# as CRI-O's default runtime handler and runc v1.4.4 as the "runc" handler,
# the reference: every check is made with both. CRI-O runs privately for this
# file (crio.bash). The checkpoint is Kubernetes': `crictl checkpoint
# --export` leaves the container running and writes an archive; a restore is
# a new container whose image is that archive, in a new pod.

load helpers
load crio

setup_file() {
	requires_root
	requires_crio
	crio_start
}

teardown_file() {
	engines_save_argv_log "crio"
	crio_stop
}

setup() {
	requires_root
	requires_crio
	MARK=$(argv_mark)
	ARCHIVES=$ENGINES_TMP/crio-archives
	mkdir -p "$ARCHIVES"
}

teardown() {
	log "--- runtime calls in this test:"
	argv_log_since "$MARK" >&2 || true
	grep -iE 'level=(error|warning)' "$CRIO_DIR/crio.log" | tail -10 >&2 || true
	crio_remove_all
}

# crio_checkpoint ARCHIVE: crictl checkpoint --export of $CRIO_CTR; the
# container keeps running, the archive has CRI-O's layout and the runtime
# got a checkpoint with --leave-running.
crio_checkpoint() {
	local archive=$1
	cri checkpoint --export="$archive" "$CRIO_CTR"
	[ "$status" -eq 0 ] || fail "crictl checkpoint failed" || return 1
	argv_since "$MARK" | grep -E ' checkpoint .*--leave-running' >/dev/null ||
		fail "the runtime got no checkpoint --leave-running" || return 1
	cri inspect -o go-template --template '{{.status.state}}' "$CRIO_CTR"
	[ "$output" = CONTAINER_RUNNING ] || fail "not running after crictl checkpoint" || return 1
	local list
	list=$(tar -tf "$archive")
	log "archive: $(tr '\n' ' ' <<<"$list")"
	local f
	for f in config.dump spec.dump checkpoint/inventory.img; do
		grep -qx "$f" <<<"$list" || grep -qx "./$f" <<<"$list" || fail "no $f in $archive" || return 1
	done
}

# check_round HANDLER NAME: pod + workload container with HANDLER,
# checkpoint (still running), restore into a new pod from the archive (the
# workload goes on from the checkpoint with its memory), a second round from
# the restored container; crictl logs of the restored one hold only the
# workload's lines. Keeps the first archive as $ARCHIVES/HANDLER.tar.
check_round() {
	local handler=$1 name=$2
	crio_pod "$name" "$handler"
	crio_ctr "$name" "$IMAGE_REF"
	wait_state crio_reader 2
	local before=$COUNTER md5=$MD5
	crio_checkpoint "$ARCHIVES/$handler.tar"
	check_runcr_reads_engine_archive "$ARCHIVES/$handler.tar" CRI-O "$name"
	wait_state crio_reader "$before"
	[ "$MD5" = "$md5" ] || fail "the running container changed"

	printf '%s %s\n' "$before" "$md5" >"$ARCHIVES/$handler.state"

	# Round 1: a new pod, the archive as image.
	crio_pod "$name-r1" "$handler"
	local m
	m=$(argv_mark)
	crio_ctr "$name-r1" "$ARCHIVES/$handler.tar"
	argv_since "$m" | grep -E ' restore ' >/dev/null || fail "the runtime got no restore"
	assert_continues crio_reader "$before" "$md5"
	crio_logs_clean "$CRIO_CTR" "$md5" "$before"

	# Round 2: checkpoint the restored container, restore that.
	before=$COUNTER
	crio_checkpoint "$BATS_TEST_TMPDIR/r2.tar"
	crio_pod "$name-r2" "$handler"
	crio_ctr "$name-r2" "$BATS_TEST_TMPDIR/r2.tar"
	assert_continues crio_reader "$before" "$md5"
	crio_logs_clean "$CRIO_CTR" "$md5" "$before"
}

@test "crio runcr: crictl checkpoint --export, restore into a new pod, twice; logs only the workload's" {
	check_round runcr wl-runcr
}

@test "crio runc (reference): crictl checkpoint --export, restore into a new pod, twice; logs only the workload's" {
	check_round runc wl-runc
}

# check_cross ARCHIVE_HANDLER HANDLER: the archive written with one runtime
# restored with the other.
check_cross() {
	local from=$1 handler=$2 archive=$ARCHIVES/$1.tar
	[ -s "$archive" ] || skip "no archive from the $from test"
	local before md5
	read -r before md5 <"$ARCHIVES/$from.state"
	crio_pod "x-$from-$handler" "$handler"
	crio_ctr "x-$from-$handler" "$archive"
	argv_since "$MARK" | grep -E ' restore ' >/dev/null || fail "the runtime got no restore"
	argv_since "$MARK" | grep -E ' restore ' | grep -F -- "--root=$CRIO_DIR/$handler-root " >/dev/null ||
		fail "the restore did not go to the $handler handler"
	assert_continues crio_reader "$before" "$md5"
	crio_logs_clean "$CRIO_CTR" "$md5" "$before"
}

@test "crio: runc's archive restored by runcr" {
	check_cross runc runcr
}

@test "crio: runcr's archive restored by runc" {
	check_cross runcr runc
}
