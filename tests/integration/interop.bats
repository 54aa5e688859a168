#!/usr/bin/env bats
# runcr and runc side by side: each restores the other's images, and the
# commands runcr passes on behave as runc's.

# shellcheck disable=SC2153 # TOKEN, COUNTER, ... are set by helpers
load helpers

@test "an image made by runc checkpoint restores under runcr" {
	use_memory_workload
	runc_with_pipes run -d "$CT"
	wait_for 50 0.1 __runcr exec "$CT" test -s /tmp/state
	read_state
	local token=$TOKEN

	runc checkpoint --image-path ./image "$CT"
	[ "$status" -eq 0 ]
	expect_state "$CT" gone
	read_state_file

	restore_detached "$CT" --image-path ./image
	expect_progress "$CT" "$COUNTER" "$token"
	# runc sees the container runcr restored.
	runc state "$CT"
	[ "$(jq -r .status <<<"$output")" = running ]
}

@test "an image made by runcr checkpoint restores under runc" {
	use_memory_workload
	start_workload
	local token=$TOKEN

	runcr checkpoint --image-path ./image "$CT"
	[ "$status" -eq 0 ]
	expect_state "$CT" gone
	read_state_file

	runc_with_pipes restore -d --image-path ./image "$CT"
	runc state "$CT"
	[ "$(jq -r .status <<<"$output")" = running ]
	expect_progress "$CT" "$COUNTER" "$token"
	# And back: runcr checkpoints what runc restored.
	runcr checkpoint --image-path ./image2 "$CT"
	[ "$status" -eq 0 ]
	expect_image ./image2
}

@test "pass-through: create, start, ps, pause, resume, kill and delete through runcr act like runc" {
	use_counter_workload
	runcr_with_pipes create "$CT"
	expect_state "$CT" created
	[ ! -e "$BUNDLE/rootfs/tmp/state" ]

	runcr start "$CT"
	[ "$status" -eq 0 ]
	expect_state "$CT" running
	read_state
	local token=$TOKEN at

	runcr ps "$CT"
	[ "$status" -eq 0 ]
	[[ "$output" == *"sh -c"* ]]
	runcr list -q
	[ "$output" = "$CT" ]
	# runcr and runc report the same state.
	[ "$(__runcr state "$CT" | jq -S 'del(.created)')" = "$(__runc state "$CT" | jq -S 'del(.created)')" ]

	runcr pause "$CT"
	[ "$status" -eq 0 ]
	expect_state "$CT" paused
	read_state_file
	at=$COUNTER
	sleep 0.5
	read_state_file
	[ "$COUNTER" -eq "$at" ]

	runcr resume "$CT"
	[ "$status" -eq 0 ]
	expect_progress "$CT" "$at" "$token"

	runcr kill "$CT" KILL
	[ "$status" -eq 0 ]
	wait_for 50 0.1 container_stopped "$CT"
	runcr delete "$CT"
	[ "$status" -eq 0 ]
	expect_state "$CT" gone

	# Errors and exit codes are runc's too.
	runcr state no-such-container
	local runcr_status=$status runcr_output=$output
	runc state no-such-container
	[ "$runcr_status" -eq "$status" ]
	[ "${runcr_output#*msg=}" = "${output#*msg=}" ]
}
