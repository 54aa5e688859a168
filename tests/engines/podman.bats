#!/usr/bin/env bats
# Debian's Podman (4.3, through conmon) with runcr as its OCI runtime.

load helpers
load podman

setup_file() {
	requires_root
	requires_cmd podman conmon
}

teardown_file() {
	engines_save_argv_log "podman"
	podman_teardown
	engines_unmount_all
}

setup() {
	requires_root
	requires_cmd podman conmon
	podman_setup json
	PODMAN_CTR=pm-$BATS_TEST_NUMBER
	MARK=$(argv_mark)
}

teardown() {
	log "--- runtime calls in this test:"
	argv_log_since "$MARK" >&2 || true
	podman_teardown
}

@test "podman: run, checkpoint, restore; workload continues with memory intact" {
	podman_run_workload "$PODMAN_CTR"
	wait_state podman_reader 2
	local before=$COUNTER md5=$MD5
	pm container checkpoint "$PODMAN_CTR"
	[ "$status" -eq 0 ]
	pm inspect -f '{{.State.Status}}' "$PODMAN_CTR"
	[ "$output" = exited ]
	pm container restore "$PODMAN_CTR"
	[ "$status" -eq 0 ]
	assert_continues podman_reader "$before" "$md5"
	# Podman passed no --root: runcr must use runc's default /run/runc.
	argv_since "$MARK" | grep -E '^checkpoint ' | grep -qv -- '--root'
}

@test "podman: checkpoint --leave-running keeps the workload running; restore from it after stop" {
	podman_run_workload "$PODMAN_CTR"
	wait_state podman_reader 2
	pm container checkpoint --leave-running "$PODMAN_CTR"
	[ "$status" -eq 0 ]
	pm inspect -f '{{.State.Status}}' "$PODMAN_CTR"
	[ "$output" = running ]
	local at=$COUNTER md5=$MD5
	wait_state podman_reader "$((at + 1))"
	[ "$MEM" = OK ]
	[ "$MD5" = "$md5" ]
	pm stop -t 0 "$PODMAN_CTR"
	# The state file still says where the container got to after the
	# checkpoint; the restored workload starts from the checkpoint's
	# counter and would take a while to pass it. Read only what it writes.
	pm mount "$PODMAN_CTR"
	[ "$status" -eq 0 ]
	rm -f "$output/tmp/state"
	pm umount "$PODMAN_CTR"
	pm container restore "$PODMAN_CTR"
	[ "$status" -eq 0 ]
	assert_continues podman_reader "$at" "$md5"
}

@test "podman: checkpoint --export, restore --import under a new name" {
	podman_run_workload "$PODMAN_CTR"
	wait_state podman_reader 2
	local before=$COUNTER md5=$MD5 tar=$BATS_TEST_TMPDIR/ckpt.tar.gz
	pm container checkpoint --export "$tar" "$PODMAN_CTR"
	[ "$status" -eq 0 ]
	[ -s "$tar" ]
	pm container restore --import "$tar" --name "$PODMAN_CTR-new"
	[ "$status" -eq 0 ]
	PODMAN_CTR=$PODMAN_CTR-new assert_continues podman_reader "$before" "$md5"
}

@test "podman: --print-stats shows CRIU's dump and restore statistics" {
	podman_run_workload "$PODMAN_CTR"
	wait_state podman_reader 2
	local before=$COUNTER md5=$MD5
	pm container checkpoint --print-stats "$PODMAN_CTR"
	[ "$status" -eq 0 ]
	local stats=$output
	echo "$stats" | jq -e '.container_statistics[0].runtime_checkpoint_duration > 0'
	echo "$stats" | jq -e '.container_statistics[0].criu_statistics | .freezing_time > 0 and .pages_written > 0'
	pm container restore --print-stats "$PODMAN_CTR"
	[ "$status" -eq 0 ]
	echo "$output" | jq -e '.container_statistics[0].runtime_restore_duration > 0'
	echo "$output" | jq -e '.container_statistics[0].criu_statistics | .restore_time > 0 and .forking_time > 0'
	assert_continues podman_reader "$before" "$md5"
}

@test "podman: --tcp-established keeps a live connection across checkpoint and restore" {
	requires_cmd socat
	WORKLOAD_PRE='nc -l -p 5000 -e cat &' podman_run_workload "$PODMAN_CTR"
	wait_state podman_reader 2
	pm inspect -f '{{.NetworkSettings.IPAddress}}' "$PODMAN_CTR"
	local ip=$output
	[ -n "$ip" ]
	# A live client on the host: a coprocess holding one TCP connection.
	coproc TCP { exec socat -t 60 - "TCP:$ip:5000"; }
	echo ping1 >&"${TCP[1]}"
	local line
	read -r -t 10 line <&"${TCP[0]}"
	[ "$line" = ping1 ]

	# Without --tcp-established CRIU refuses; the cause must reach the user.
	pm container checkpoint "$PODMAN_CTR"
	[ "$status" -ne 0 ]
	[[ "$output" == *tcp-established* ]] || fail "podman's error does not name --tcp-established: $output"
	pm inspect -f '{{.State.Status}}' "$PODMAN_CTR"
	[ "$output" = running ]

	local before=$COUNTER md5=$MD5
	wait_state podman_reader "$before"
	before=$COUNTER
	pm container checkpoint --tcp-established "$PODMAN_CTR"
	[ "$status" -eq 0 ]
	argv_since "$MARK" | grep -E '^checkpoint .*--tcp-established'
	pm container restore --tcp-established "$PODMAN_CTR"
	[ "$status" -eq 0 ]
	argv_since "$MARK" | grep -E '^--log-format=json --log [^ ]+ restore .*--tcp-established'
	echo ping2 >&"${TCP[1]}"
	read -r -t 10 line <&"${TCP[0]}"
	[ "$line" = ping2 ] || fail "the connection did not survive: got '$line'"
	assert_continues podman_reader "$before" "$md5"
	kill "$TCP_PID" 2>/dev/null || true
}

# A restore that fails inside CRIU (a memory image is missing). Podman reads
# the runtime's --log file as ONE JSON object (json.Unmarshal of the whole
# file) and, failing that, conmon's relay of the runtime's stderr; either
# way the user's error must carry runcr's cause, not a generic failure.
podman_failed_restore() {
	podman_run_workload "$PODMAN_CTR"
	wait_state podman_reader 1
	pm container checkpoint --keep "$PODMAN_CTR"
	[ "$status" -eq 0 ]
	pm inspect -f '{{.Id}}' "$PODMAN_CTR"
	local id=$output ck
	# shellcheck disable=SC2153 # PODMAN_DIR is set by podman.bash
	ck=$PODMAN_DIR/root/overlay-containers/$id/userdata/checkpoint
	ls "$ck" >&2
	local pages
	pages=$(find "$ck" -maxdepth 1 -name 'pages-*.img' | head -1)
	[ -n "$pages" ]
	rm -f "$pages"
	pm container restore "$PODMAN_CTR"
	[ "$status" -ne 0 ]
	local err=$output
	local ocilog=$PODMAN_DIR/run/overlay-containers/$id/userdata/oci-log
	if [ -f "$ocilog" ]; then
		log "--- runcr's --log file ($ocilog):"
		cat "$ocilog" >&2
	fi
	[[ "$err" != *"invalid character"* ]] || fail "Podman could not parse runcr's log"
	[[ "$err" != *"container create failed"* ]] || fail "generic error, the cause was lost: $err"
	# Podman shows one line (the first that matches "permission denied|
	# operation not permitted|no such file", else all it got): it must be
	# runcr's final error, naming CRIU's real cause, the missing pages.
	[[ "$err" != *"level=warning"* ]] || fail "podman shows a warning line instead of the cause: $err"
	[[ "$err" == *"restore"*"failed"* ]] || fail "podman's error is not runcr's final error: $err"
	[[ "$err" =~ pagemap|pages- ]] || fail "podman's error does not show CRIU's cause (memory pages): $err"
}

@test "podman (runtime_supports_json): a failed restore shows runcr's cause" {
	podman_failed_restore
	argv_since "$MARK" | grep -E '^--log-format=json --log [^ ]+ restore '
}

@test "podman (no JSON log): a failed restore shows runcr's cause" {
	podman_setup
	podman_failed_restore
	argv_since "$MARK" | grep -E '^restore '
}

@test "podman: --preserve-fds on run is sent again on restore" {
	WORKLOAD_PRE='exec 3>&-;' PODMAN_RUN_FD3=1 podman_run_workload "$PODMAN_CTR" --preserve-fds 1
	wait_state podman_reader 2
	local before=$COUNTER md5=$MD5
	pm container checkpoint "$PODMAN_CTR"
	[ "$status" -eq 0 ]
	trun bash -c 'exec 3</dev/null; exec "$@"' bash "${PODMAN[@]}" container restore "$PODMAN_CTR"
	[ "$status" -eq 0 ]
	argv_since "$MARK" | grep -E '^.*restore .*--preserve-fds 1 '
	assert_continues podman_reader "$before" "$md5"
}

@test "podman: a terminal container (run -t): restore hands conmon the new pty through --console-socket" {
	podman_run_workload "$PODMAN_CTR" -t
	wait_state podman_reader 2
	local before=$COUNTER md5=$MD5
	pm container checkpoint "$PODMAN_CTR"
	[ "$status" -eq 0 ]
	pm container restore "$PODMAN_CTR"
	[ "$status" -eq 0 ]
	argv_since "$MARK" | grep -E '(^| )restore .*--console-socket ' || fail "conmon passed no console socket"
	assert_continues podman_reader "$before" "$md5"
	# The restored workload writes to its terminal, which conmon reads
	# through the pty master runcr sent it: the log grows.
	local n grown=
	n=$(__podman logs "$PODMAN_CTR" 2>/dev/null | grep -c 'counter=')
	for _ in $(seq 30); do
		sleep 0.5
		if [ "$(__podman logs "$PODMAN_CTR" 2>/dev/null | grep -c 'counter=')" -gt "$n" ]; then
			grown=1
			break
		fi
	done
	[ -n "$grown" ] ||
		fail "nothing more arrived on the terminal after restore"
}
