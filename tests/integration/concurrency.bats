#!/usr/bin/env bats
# Two commands on one container at once: a checkpoint or restore held in
# the middle (by a CRIU action script from the container's own CRIU
# configuration) while a second one tries. One proceeds; the other fails at
# once, saying why; nothing is corrupted.

# shellcheck disable=SC2153 # TOKEN, COUNTER, ... are set by helpers
load helpers

# Points the container's CRIU configuration (the org.criu.config
# annotation runc and runcr read) at an action script that holds CRIU at
# action $1 until $ROOT/release exists, saying so in $ROOT/held.
hold_criu_at() {
	cat >"$ROOT/hold.sh" <<-SCRIPT
		#!/bin/sh
		[ "\$CRTOOLS_SCRIPT_ACTION" = "$1" ] || exit 0
		touch "$ROOT/held"
		i=0
		while [ ! -e "$ROOT/release" ] && [ \$i -lt 600 ]; do sleep 0.1; i=\$((i + 1)); done
	SCRIPT
	chmod +x "$ROOT/hold.sh"
	echo "action-script $ROOT/hold.sh" >"$ROOT/criu.conf"
	# shellcheck disable=SC2016 # a jq variable
	update_config --arg c "$ROOT/criu.conf" '.annotations["org.criu.config"] = $c'
}

# Runs `runcr ARGS` in the background with the container pipes; its exit
# status lands in $ROOT/bg.rc.
runcr_in_background() {
	(
		rc=0
		runcr_with_pipes "$@" || rc=$?
		echo "$rc" >"$ROOT/bg.rc"
	) &
	BG_PIDS+=($!)
}

bg_status() {
	wait_for 300 0.1 test -s "$ROOT/bg.rc" || fail "the held command never finished"
	cat "$ROOT/bg.rc"
}

@test "a restore held midway: a second restore of the id fails as existing, a checkpoint of it as busy; the first carries on" {
	requires runcr
	hold_criu_at pre-resume
	use_memory_workload
	start_workload
	local token=$TOKEN t0
	runcr checkpoint --image-path ./image "$CT"
	[ "$status" -eq 0 ]
	read_state_file

	runcr_in_background restore -d --image-path ./image "$CT"
	wait_for 300 0.1 test -e "$ROOT/held" || fail "the restore never reached pre-resume"

	t0=$SECONDS
	runcr restore -d --image-path ./image "$CT"
	[ "$status" -ne 0 ]
	[[ $output == *"already exists"* ]] || fail "second restore: $output"
	runcr checkpoint --image-path ./image2 "$CT"
	[ "$status" -ne 0 ]
	[[ $output == *busy* ]] || fail "checkpoint during the restore: $output"
	[ $((SECONDS - t0)) -lt 10 ] || fail "the refusals were not fast"
	[ ! -e ./image2/inventory.img ]

	touch "$ROOT/release"
	[ "$(bg_status)" -eq 0 ] || fail "the held restore failed"
	expect_state "$CT" running
	expect_progress "$CT" "$COUNTER" "$token"
}

@test "a checkpoint held after the dump: a restore from its images fails as busy; the checkpoint completes and restores" {
	requires runcr
	hold_criu_at post-dump
	use_memory_workload
	start_workload
	local token=$TOKEN
	runcr_in_background checkpoint --image-path ./image "$CT"
	wait_for 300 0.1 test -e "$ROOT/held" || fail "the checkpoint never reached post-dump"

	# Its images are still being written (the manifest says incomplete):
	# a restore from them, under its id or another, is refused as busy.
	local id
	for id in "$CT" "$CT-other"; do
		runcr restore -d --image-path ./image "$id"
		[ "$status" -ne 0 ]
		[[ $output == *busy* && $output == *"still writing these images"* ]] || fail "restore as $id during the checkpoint: $output"
	done
	expect_state "$CT-other" gone

	touch "$ROOT/release"
	[ "$(bg_status)" -eq 0 ] || fail "the held checkpoint failed"
	expect_state "$CT" gone
	read_state_file
	restore_detached "$CT" --image-path ./image
	expect_progress "$CT" "$COUNTER" "$token"
}
