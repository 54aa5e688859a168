#!/usr/bin/env bats
# runcr lxc-checkpoint, and runcr run as lxc-checkpoint: lxc-checkpoint(1)'s
# options over runcr's checkpoint and restore. Every command here names the
# state directory with -P (lxc's lxcpath), not runcr's --root.

# shellcheck disable=SC2153 # TOKEN, COUNTER, ... are set by helpers
load helpers

setup() {
	setup_common
	requires runcr
	setup_bundle
	mkdir -p "$ROOT/bin"
	ln -s "$RUNCR" "$ROOT/bin/lxc-checkpoint"
	LXC_LINK=$ROOT/bin/lxc-checkpoint
	# A working directory that is not the bundle, with a decoy config.json
	# that would fail any restore that read it.
	mkdir -p "$ROOT/elsewhere"
	jq '.process.args = ["/no/such/program"] | .root.path = "/no/such/rootfs"' \
		"$BUNDLE/config.json" >"$ROOT/elsewhere/config.json"
}

# `runcr lxc-checkpoint ARGS` (no --root) under bats' run, logged.
__lxc() {
	env "${CRIU_ENV[@]}" timeout -k 5 "$RUNCR_TEST_TIMEOUT" "$RUNCR" lxc-checkpoint "$@"
}
lxc() {
	run __lxc "$@"
	log "\$ $RUNCR lxc-checkpoint $* (status=$status)"
	[ -n "$output" ] && log "$output"
	return 0
}

# The same through the link named lxc-checkpoint.
__lxc_link() {
	env "${CRIU_ENV[@]}" timeout -k 5 "$RUNCR_TEST_TIMEOUT" "$LXC_LINK" "$@"
}
lxc_link() {
	run __lxc_link "$@"
	log "\$ $LXC_LINK $* (status=$status)"
	[ -n "$output" ] && log "$output"
	return 0
}

# A detached restore with the container pipes as stdio ($1: __lxc or
# __lxc_link); the container must then be running.
lxc_restore_detached() {
	local how=$1 rc=0
	shift
	[ -n "${STDIN_R:-}" ] || setup_pipes
	"$how" "$@" <&"$STDIN_R" >&"$STDOUT_W" 2>&"$STDOUT_W" || rc=$?
	log "\$ $how $* (status=$rc, stdio: pipes)"
	[ "$rc" -eq 0 ] || fail "restore failed: $(tail -5 "$CT_OUT")"
}

# Checks the container runs on as the same process, memory intact.
expect_untouched() {
	local pid=$1 token=$2
	expect_state "$CT" running
	[ "$(container_pid "$CT")" = "$pid" ] || fail "the container's init changed"
	read_state
	expect_progress "$CT" "$COUNTER" "$token"
}

@test "lxc-checkpoint -n CT -D DIR -P ROOT: the container keeps running and the images are written" {
	use_memory_workload
	start_workload
	local token=$TOKEN pid
	pid=$(container_pid "$CT")

	lxc -n "$CT" -D "$ROOT/img" -P "$STATE"
	[ "$status" -eq 0 ]
	expect_image "$ROOT/img"
	jq -e '.state == "complete" and .options.leave_running' "$ROOT/img/runcr-manifest.json"
	expect_untouched "$pid" "$token"

	# The images hold the running process: bring it back from them.
	runcr delete -f "$CT"
	expect_state "$CT" gone
	cd "$ROOT/elsewhere"
	lxc_restore_detached __lxc -r -n "$CT" -D "$ROOT/img" -P "$STATE"
	expect_state "$CT" running
	expect_progress "$CT" 0 "$token"
}

@test "lxc-checkpoint -s stops the container; -r restores it detached under a new id, without a bundle, from elsewhere" {
	use_memory_workload
	start_workload
	local token=$TOKEN pid at
	pid=$(container_pid "$CT")

	# Combined short options with an attached value, as getopt reads them.
	lxc -sn "$CT" -D"$ROOT/img" -P "$STATE"
	[ "$status" -eq 0 ]
	expect_state "$CT" gone
	wait_for 50 0.1 pid_gone "$pid" || fail "the container's process survived -s"
	expect_image "$ROOT/img"
	read_state_file
	at=$COUNTER

	# A working directory whose config.json would break the restore: the
	# bundle comes from the checkpoint's manifest.
	cd "$ROOT/elsewhere"
	lxc_restore_detached __lxc -r -n "$CT-b" -D "$ROOT/img" -P "$STATE"
	# Detached: nothing of runcr waits for the container.
	run ! pgrep -f -- "lxc-checkpoint -r -n $CT-b"
	runcr state "$CT-b"
	[ "$(jq -r .bundle <<<"$output")" = "$BUNDLE" ]
	expect_progress "$CT-b" "$at" "$token"
	expect_state "$CT" gone
}

@test "a link named lxc-checkpoint is the same command: -s, then -rd under the same id" {
	use_memory_workload
	start_workload
	local token=$TOKEN pid at
	pid=$(container_pid "$CT")

	lxc_link -n "$CT" -P "$STATE" -D "$ROOT/img" -s
	[ "$status" -eq 0 ]
	expect_state "$CT" gone
	wait_for 50 0.1 pid_gone "$pid" || fail "the container's process survived -s"
	read_state_file
	at=$COUNTER

	cd "$ROOT/elsewhere"
	lxc_restore_detached __lxc_link -rd --name="$CT" --checkpoint-dir "$ROOT/img" --lxcpath="$STATE"
	expect_state "$CT" running
	expect_progress "$CT" "$at" "$token"

	# And the link checkpoints the restored container, leaving it running.
	pid=$(container_pid "$CT")
	lxc_link "$CT" -D "$ROOT/img2" -P "$STATE"
	[ "$status" -eq 0 ]
	expect_image "$ROOT/img2"
	expect_untouched "$pid" "$token"
}

@test "lxc-checkpoint -rF restores in the foreground and exits with the container's status" {
	use_counter_workload
	start_workload
	local token=$TOKEN at rc
	lxc -s -n "$CT" -D "$ROOT/img" -P "$STATE"
	[ "$status" -eq 0 ]
	expect_state "$CT" gone
	read_state_file
	at=$COUNTER

	cd "$ROOT/elsewhere"
	setup_pipes
	(
		rc=0
		__lxc_link -rF -n "$CT" -D "$ROOT/img" -P "$STATE" \
			<&"$STDIN_R" >&"$STDOUT_W" 2>&"$STDOUT_W" 3>&- || rc=$?
		echo "$rc" >"$ROOT/restore.rc"
	) &
	log "\$ $LXC_LINK -rF -n $CT -D $ROOT/img -P $STATE (in the foreground)"
	wait_for 100 0.1 __runcr exec "$CT" true || fail "the restored container never ran"
	expect_progress "$CT" "$at" "$token"
	# Still waiting for the container.
	[ ! -e "$ROOT/restore.rc" ]
	# The restored container's output goes to the foreground command's stdout.
	wait_for 50 0.1 grep -qx "$((at + 10))" "$CT_OUT" || fail "no output from the restored container"

	echo 42 >"$BUNDLE/rootfs/tmp/exit"
	wait_for 100 0.1 test -s "$ROOT/restore.rc" || fail "-F did not return after the container exited"
	rc=$(cat "$ROOT/restore.rc")
	log "lxc-checkpoint -rF exited with $rc"
	[ "$rc" -eq 42 ]
	expect_state "$CT" gone
}

@test "lxc-checkpoint refuses bad combinations, naming the option; the container is untouched" {
	use_memory_workload
	start_workload
	local token=$TOKEN pid args want
	pid=$(container_pid "$CT")

	while IFS='|' read -r args want; do
		# shellcheck disable=SC2086 # word splitting wanted
		lxc $args -P "$STATE"
		[ "$status" -ne 0 ] || fail "'$args' was accepted"
		[[ "$output" == *"$want"* ]] || fail "'$args': message does not say '$want'"
		[ "$status" -lt 124 ] || fail "'$args' timed out"
	done <<EOF
-r -s -n $CT -D $ROOT/img|-s: can't be used with -r
-rs -n $CT -D $ROOT/img|-s: can't be used with -r
-d -n $CT -D $ROOT/img|-d/-F: only apply to a restore
-F -n $CT -D $ROOT/img|-d/-F: only apply to a restore
-r -d -F -n $CT -D $ROOT/img|-d/-F: give one
-n $CT|-D: is required
-D $ROOT/img|-n: no container name
-n $CT -D $ROOT/img -l LOUD|-l: unknown log priority
-n $CT -D $ROOT/img -x|-x: unknown option
-n $CT -D $ROOT/img -A /bin/true|-A: not supported
-n $CT -D $ROOT/img --rcfile $BUNDLE/config.json|--rcfile: only applies to a restore
-n $CT -D $ROOT/img -s -p|-s: can't be used with -p
-n $CT -D $ROOT/img -P $ROOT/other|-P: given twice
EOF
	# Nothing was dumped, and the container never stopped.
	[ ! -e "$ROOT/img/inventory.img" ]
	expect_untouched "$pid" "$token"

	# Restoring over the running container is refused by the library.
	lxc -n "$CT" -D "$ROOT/img" -P "$STATE"
	[ "$status" -eq 0 ]
	cd "$ROOT/elsewhere"
	lxc -r -n "$CT" -D "$ROOT/img" -P "$STATE"
	[ "$status" -ne 0 ]
	[[ "$output" == *"already exists"*"under -P $STATE"* ]]
	expect_untouched "$pid" "$token"

	# Images without a manifest (runc's) need --rcfile, named as such.
	rm "$ROOT/img/runcr-manifest.json"
	lxc -r -n "$CT-b" -D "$ROOT/img" -P "$STATE"
	[ "$status" -ne 0 ]
	[[ "$output" == *"--rcfile"* ]]
	expect_state "$CT-b" gone
	# A missing checkpoint directory is named -D, and nothing is created.
	lxc -r -n "$CT-b" -D "$ROOT/nothing" -P "$STATE" --rcfile "$BUNDLE/config.json"
	[ "$status" -ne 0 ]
	[[ "$output" == *"-D: "* ]]
	lxc -r -n "$CT-b" -D "$ROOT/nothing" -P "$STATE"
	[ "$status" -ne 0 ]
	[[ "$output" == *"-D: "* ]]
	expect_state "$CT-b" gone
	expect_untouched "$pid" "$token"
}

@test "lxc-checkpoint -r --rcfile restores a manifest-less checkpoint with the given bundle" {
	use_memory_workload
	start_workload
	local token=$TOKEN at
	lxc -s -n "$CT" -D "$ROOT/img" -P "$STATE"
	[ "$status" -eq 0 ]
	read_state_file
	at=$COUNTER
	rm "$ROOT/img/runcr-manifest.json"

	cd "$ROOT/elsewhere"
	lxc_restore_detached __lxc -r -n "$CT" -D "$ROOT/img" -P "$STATE" --rcfile "$BUNDLE/config.json"
	expect_progress "$CT" "$at" "$token"
}

@test "lxc-checkpoint -p: a pre-dump keeps the container running, or is refused before freezing where soft-dirty tracking is missing" {
	use_memory_workload
	start_workload
	local token=$TOKEN pid
	pid=$(container_pid "$CT")

	lxc -p -n "$CT" -D "$ROOT/pre" -P "$STATE"
	if criu check --feature mem_dirty_track >/dev/null 2>&1; then
		[ "$status" -eq 0 ]
		expect_image "$ROOT/pre"
	else
		[ "$status" -ne 0 ]
		[[ "$output" == *mem_dirty_track* ]]
		[ ! -e "$ROOT/pre/inventory.img" ]
	fi
	expect_untouched "$pid" "$token"
}

@test "lxc-checkpoint -o FILE -l DEBUG logs there; -q keeps stderr quiet" {
	use_counter_workload
	start_workload
	local token=$TOKEN pid
	pid=$(container_pid "$CT")

	lxc -q -o "$ROOT/lxc.log" -l DEBUG -n "$CT" -D "$ROOT/img" -P "$STATE"
	[ "$status" -eq 0 ]
	[ -z "$output" ]
	grep -q 'level=debug' "$ROOT/lxc.log"

	lxc -l ERROR -o "$ROOT/err.log" -n "$CT" -D "$ROOT/img2" -P "$STATE"
	[ "$status" -eq 0 ]
	run ! grep -q 'level=debug' "$ROOT/err.log"
	expect_untouched "$pid" "$token"

	# Errors still reach stderr with -q, and the log file with -o.
	lxc -q -o "$ROOT/lxc.log" -n "$CT-none" -D "$ROOT/img3" -P "$STATE"
	[ "$status" -ne 0 ]
	[[ "$output" == *"no such container"* ]]
	grep -q 'no such container' "$ROOT/lxc.log"
}

@test "lxc-checkpoint --version, --usage, -h and -? exit 0, through runcr and the link" {
	local how arg
	for how in lxc lxc_link; do
		$how --version
		[ "$status" -eq 0 ]
		[[ "$output" == "runcr version "* ]]
		$how --usage
		[ "$status" -eq 0 ]
		[[ "$output" == *"[-D|--checkpoint-dir=DIR]"* ]]
		for arg in -h --help -? --he; do
			$how "$arg"
			[ "$status" -eq 0 ]
			[[ "$output" == *"-F, --foreground"* ]]
		done
	done
	# Without options it is an error, like lxc's "No container name specified".
	lxc_link
	[ "$status" -ne 0 ]
	[[ "$output" == *"-n: no container name"* ]]
}
