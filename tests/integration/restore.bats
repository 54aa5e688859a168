#!/usr/bin/env bats
# runcr restore: detached and foreground restores, exit status, pid file,
# and the flags that change how the restored container is set up.

# shellcheck disable=SC2153 # TOKEN, COUNTER, ... are set by helpers
load helpers

# Checkpoints a fresh counter workload into ./image; sets TOKEN and COUNTER
# (the counter at dump time).
checkpoint_counter() {
	use_counter_workload
	start_workload
	runcr checkpoint --image-path ./image "$CT"
	[ "$status" -eq 0 ] || fail "checkpoint failed"
	expect_state "$CT" gone
	read_state_file
}

# Restores in the foreground (in the background of the test), waits for the
# container to run on, makes it exit with status $1 and checks that restore
# exits with that status. Extra args go to restore.
foreground_restore_exits_with() {
	local want=$1 token=$TOKEN at=$COUNTER rc
	shift
	setup_pipes
	(
		rc=0
		__runcr restore "$@" --image-path ./image "$CT" \
			<&"$STDIN_R" >&"$STDOUT_W" 2>&"$STDOUT_W" 3>&- || rc=$?
		echo "$rc" >"$ROOT/restore.rc"
	) &
	log "\$ $RUNCR --root $STATE restore $* --image-path ./image $CT (in the foreground)"
	wait_for 100 0.1 __runcr exec "$CT" true || fail "the restored container never ran"
	expect_state "$CT" running
	expect_progress "$CT" "$at" "$token"
	# Restore is still waiting for the container.
	[ ! -e "$ROOT/restore.rc" ]

	echo "$want" >"$BUNDLE/rootfs/tmp/exit"
	wait_for 100 0.1 test -s "$ROOT/restore.rc" || fail "restore did not return after the container exited"
	rc=$(cat "$ROOT/restore.rc")
	log "restore exited with $rc"
	[ "$rc" -eq "$want" ]
	expect_state "$CT" gone
}

@test "restore --detach returns while the container runs on" {
	checkpoint_counter
	local token=$TOKEN at=$COUNTER pid

	restore_detached "$CT" --image-path ./image
	# Nothing of runcr waits for the container.
	run ! pgrep -f -- "--root $STATE restore"
	pid=$(container_pid "$CT")
	run ! grep -q runc "/proc/$(awk '{print $4}' "/proc/$pid/stat")/cmdline"
	expect_progress "$CT" "$at" "$token"
}

@test "restore in the foreground waits and exits with the container's exit status" {
	checkpoint_counter
	foreground_restore_exits_with 42
}

@test "restore --no-subreaper in the foreground still forwards the exit status" {
	checkpoint_counter
	foreground_restore_exits_with 7 --no-subreaper
}

@test "restore --pid-file writes the pid of the restored init, which is alive" {
	use_memory_workload
	start_workload
	local token=$TOKEN pid
	runcr checkpoint --image-path ./image "$CT"
	[ "$status" -eq 0 ]
	read_state_file

	restore_detached "$CT" --pid-file ./ct.pid --image-path ./image
	pid=$(cat ./ct.pid)
	[[ "$pid" =~ ^[0-9]+$ ]]
	kill -0 "$pid"
	[ "$pid" = "$(container_pid "$CT")" ]
	# It is the container's init: pid 1 in its namespace, running the workload.
	grep -Eq '^NSpid:.*[[:space:]]1$' "/proc/$pid/status"
	tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q memtest.awk
	expect_progress "$CT" "$COUNTER" "$token"
}

@test "restore --no-pivot restores a working container" {
	checkpoint_counter
	local token=$TOKEN at=$COUNTER

	restore_detached "$CT" --no-pivot --image-path ./image
	expect_progress "$CT" "$at" "$token"
	runcr exec "$CT" cat /etc/hostname
	[ "$status" -eq 0 ]
	[ "$output" = runcr-test ]
}

@test "restore --bundle from another directory uses that bundle's config" {
	checkpoint_counter
	local token=$TOKEN at=$COUNTER
	cd "$ROOT"

	restore_detached "$CT" --bundle "$BUNDLE" --image-path "$BUNDLE/image"
	runcr state "$CT"
	[ "$(jq -r .bundle <<<"$output")" = "$BUNDLE" ]
	expect_progress "$CT" "$at" "$token"
}

@test "restore of a missing image fails and leaves no container behind" {
	runcr restore -d --image-path ./no-such-image "$CT"
	[ "$status" -ne 0 ]
	expect_state "$CT" gone
	runcr list -q
	[ -z "$output" ]
}

@test "restore --preserve-fds: a pipe the container was given at fd 3 is reattached to the one restore is given" {
	requires runcr
	# A side job writes a count to fd 3 (handed in with --preserve-fds);
	# the counter loop is the workload whose memory is checked.
	# shellcheck disable=SC2016 # expanded by the container's shell
	use_counter_workload '(n=0; while :; do n=$((n + 1)); echo $n >&3 || exit 1; sleep 0.1; done) &
'
	local a b outA=$ROOT/outA outB=$ROOT/outB token at
	exec {a}> >(exec cat >"$outA")
	runcr_with_pipes run -d --preserve-fds 1 "$CT" 3>&"$a" || fail "run --preserve-fds failed"
	exec {a}>&-
	read_state
	token=$TOKEN
	wait_for 50 0.1 fd_count_above "$outA" 3

	runcr checkpoint --image-path ./image "$CT"
	[ "$status" -eq 0 ]
	jq -e '.inherited_fds["3"] | startswith("pipe:[")' ./image/runcr-manifest.json
	read_state_file
	at=$(tail -1 "$outA")

	exec {b}> >(exec cat >"$outB")
	restore_detached "$CT" --preserve-fds 1 --image-path ./image 3>&"$b"
	exec {b}>&-
	# The side job writes on into the new pipe, where it left off.
	wait_for 50 0.1 fd_count_above "$outB" "$((at + 5))" || fail "nothing past $at arrived in the new pipe: $(tr '\n' ' ' <"$outB")"
	[ "$(tail -1 "$outA")" = "$at" ]
	expect_progress "$CT" "$COUNTER" "$token"
}

fd_count_above() {
	local n
	n=$(tail -1 "$1" 2>/dev/null)
	[ -n "$n" ] && [ "$n" -gt "$2" ]
}

@test "restore in the foreground: an init that set a parent-death signal runs on while restore waits, as under runc" {
	local memhog=$BUILD_DIR/memhog
	go_build_once "$memhog" ./tests/bench/memhog || fail "building tests/bench/memhog failed (see $TEST_LOG)"
	cp "$memhog" "$BUNDLE/rootfs/memhog"
	# SIGKILL when its parent thread dies (tini -p does this); CRIU
	# restores the setting, and the restored init's parent is the thread
	# of runcr that started CRIU.
	# Set once `runc run -d` has surely exited: set before, runc's exit
	# would fire it (a race that load decides).
	set_args sh -c 'sleep 1; exec /memhog -mib 16 -seed 3 -state /tmp/hog -pdeathsig 9'
	run_detached
	wait_for 100 0.1 test -s "$BUNDLE/rootfs/tmp/hog" || fail "memhog never got ready"
	local token
	token=$(tr ' ' '\n' <"$BUNDLE/rootfs/tmp/hog" | sed -n 's/^token=//p')
	runcr checkpoint --image-path ./image "$CT"
	[ "$status" -eq 0 ]
	setup_pipes
	(
		rc=0
		__runcr restore --image-path ./image "$CT" <&"$STDIN_R" >&"$STDOUT_W" 2>&"$STDOUT_W" 3>&- || rc=$?
		echo "$rc" >"$ROOT/restore.rc"
	) &
	wait_for 100 0.1 __runcr exec "$CT" true || fail "the restored container never ran"
	# Well after CRIU is done, the init runs, and restore still waits.
	sleep 1
	expect_state "$CT" running
	[ ! -e "$ROOT/restore.rc" ] || fail "restore returned $(cat "$ROOT/restore.rc"): the init was killed"
	kill -USR1 "$(container_pid "$CT")"
	wait_for 100 0.1 grep -q 'check=1 ' "$BUNDLE/rootfs/tmp/hog" || fail "memhog did not re-check its memory"
	grep -q "token=$token .*result=OK" "$BUNDLE/rootfs/tmp/hog" || fail "not the same memhog, or its memory changed: $(cat "$BUNDLE/rootfs/tmp/hog")"
	runcr kill "$CT" KILL
	wait_for 100 0.1 test -s "$ROOT/restore.rc" || fail "restore did not return after the container was killed"
}
