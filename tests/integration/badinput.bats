#!/usr/bin/env bats
# Bad input: every wrong id, state, path, option and image is refused with
# a non-zero status and a message naming the input; the running container
# is untouched (it keeps counting, same token, memory intact) and nothing is
# written outside the paths the command was given. Refusals covered
# elsewhere (absolute or missing --parent-path, --manage-cgroups-mode,
# --empty-ns, --status-fd not open, --pre-dump/--lazy-pages, a missing
# image) are not repeated here.

# shellcheck disable=SC2153 # TOKEN, COUNTER, ... are set by helpers
load helpers

# The names of everything under $ROOT but the container's rootfs (its
# workload writes there): a refusal must not add or remove any.
snapshot() {
	find "$ROOT" -path "$BUNDLE/rootfs" -prune -o -print | sort
}

expect_snapshot() {
	local now
	now=$(snapshot)
	[ "$now" = "$1" ] || fail "files changed: $(diff <(echo "$1") <(echo "$now"))"
}

# expect_refused WANT...: the last runcr call failed (not by timeout) and
# its message contains every WANT.
expect_refused() {
	[ "$status" -ne 0 ] || fail "accepted, want a refusal"
	[ "$status" -lt 124 ] || fail "timed out (status $status) instead of refusing"
	# logrus quotes the message: \" stands for ".
	local w out=${output//\\\"/\"}
	for w in "$@"; do
		[[ "$out" == *"$w"* ]] || fail "message lacks \"$w\""
	done
}

# The workload of $CT still runs, thawed, the same process, memory intact.
expect_untouched() {
	expect_state "$CT" running
	read_state
	expect_progress "$CT" "$COUNTER" "$1"
}

# Processes whose root is this test's rootfs (container processes left
# behind by a failed restore).
procs_in_rootfs() {
	find -L /proc/[0-9]*/root -maxdepth 0 -samefile "$BUNDLE/rootfs" 2>/dev/null | cut -d/ -f3 | tr '\n' ' '
}

# A second bundle on the same rootfs that only sleeps, for containers in
# other states (they must not run the workload, which owns /tmp/state).
setup_sleeper_bundle() {
	SLEEPER=$ROOT/sleeper
	mkdir -p "$SLEEPER"
	jq --arg r "$BUNDLE/rootfs" '.root.path = $r | .process.args = ["sleep", "1000"]' \
		"$BUNDLE/config.json" >"$SLEEPER/config.json"
}

@test "checkpoint: unknown, malformed and empty ids, created and stopped containers are refused, naming the id and state" {
	use_counter_workload
	start_workload
	local token=$TOKEN before
	setup_sleeper_bundle
	runcr_with_pipes create --bundle "$SLEEPER" "$CT-created" || fail "create failed"
	expect_state "$CT-created" created
	runcr_with_pipes run -d --bundle "$SLEEPER" "$CT-stopped" || fail "run failed"
	runcr kill "$CT-stopped" KILL
	wait_for 50 0.1 container_stopped "$CT-stopped" || fail "$CT-stopped did not stop"
	expect_state "$CT-stopped" stopped
	before=$(snapshot)

	# id | what the message must say (|-separated)
	local cases=(
		"no-such-ct|no such container|\"no-such-ct\"|list"
		"a/b|container id \"a/b\"|letters, digits"
		"..|container id \"..\"|letters, digits"
		"../$CT|container id \"../$CT\""
		"|container id is empty"
		"$CT-created|\"$CT-created\" is created|runcr start $CT-created"
		"$CT-stopped|\"$CT-stopped\" is stopped|nothing to checkpoint"
	)
	local c id want
	for c in "${cases[@]}"; do
		IFS='|' read -r -a want <<<"$c"
		id=${want[0]}
		runcr checkpoint --leave-running --image-path "$ROOT/image" "$id"
		expect_refused "${want[@]:1}"
	done
	expect_snapshot "$before"
	[ ! -e "$ROOT/image" ]
	expect_state "$CT-created" created
	expect_state "$CT-stopped" stopped
	expect_untouched "$token"
}

@test "checkpoint: bad image, work and parent paths, page server and status fd are refused before freezing; nothing is written" {
	use_counter_workload
	start_workload
	local token=$TOKEN before
	# Fixtures: a file, a read-only file system, a shared (sticky, 1777)
	# directory with links planted in it, directories of another user and
	# writable by all, a parent that is a file and one outside.
	touch "$ROOT/file"
	mkdir -p "$ROOT/ro" "$ROOT/shared" "$ROOT/target" "$ROOT/nobody" "$ROOT/open" \
		"$ROOT/ckpt/img" "$ROOT/outside"
	mount -t tmpfs -o ro,size=1m,mode=0700 tmpfs "$ROOT/ro"
	chmod 1777 "$ROOT/shared"
	ln -s "$ROOT/target" "$ROOT/shared/img"
	ln -s "$ROOT/target" "$ROOT/shared/work"
	ln -s "$ROOT/nowhere" "$ROOT/shared/dangling"
	# Planted by another user, as in /tmp.
	chown -h 65534:65534 "$ROOT/shared/img" "$ROOT/shared/work" "$ROOT/shared/dangling"
	chown 65534:65534 "$ROOT/nobody"
	chmod 0777 "$ROOT/open"
	touch "$ROOT/ckpt/notdir"
	before=$(snapshot)

	# arguments (;-separated) | what the message must say (|-separated)
	local cases=(
		"--image-path;$ROOT/file|--image-path|$ROOT/file|not a directory"
		"--image-path;$ROOT/file/sub|--image-path|$ROOT/file/sub|not a directory"
		"--image-path;$ROOT/ro|--image-path|$ROOT/ro|not writable|read-only file system"
		"--image-path;$ROOT/ro/img|--image-path|$ROOT/ro/img|read-only file system"
		"--image-path;$ROOT/shared/img|--image-path|$ROOT/shared/img|symbolic link|owned by uid 65534|give the real directory"
		"--image-path;$ROOT/shared/dangling|--image-path|symbolic link"
		"--image-path;$ROOT/ckpt/img;--work-path;$ROOT/shared/work|--work-path|$ROOT/shared/work|symbolic link"
		"--image-path;$ROOT/nobody|--image-path|$ROOT/nobody|owned by uid 65534|of your own"
		"--image-path;$ROOT/open|--image-path|$ROOT/open|writable by its group or others|chmod go-w"
		"--image-path;$ROOT/ckpt/img;--parent-path;../notdir|--parent-path|$ROOT/ckpt/notdir is not a directory"
		"--image-path;$ROOT/ckpt/img;--parent-path;../../outside|--parent-path|\"../../outside\"|outside $ROOT/ckpt|../NAME"
		"--image-path;$ROOT/ckpt/img;--parent-path;.|--parent-path|image directory itself"
		"--image-path;$ROOT/ckpt/img;--page-server;127.0.0.1|--page-server|\"127.0.0.1\" is not ADDRESS:PORT"
		"--image-path;$ROOT/ckpt/img;--page-server;127.0.0.1:|--page-server|is not ADDRESS:PORT"
		"--image-path;$ROOT/ckpt/img;--page-server;127.0.0.1:99999|--page-server|port \"99999\"|1 to 65535"
		"--image-path;$ROOT/ckpt/img;--page-server;127.0.0.1:http|--page-server|port \"http\""
		"--image-path;$ROOT/ckpt/img;--page-server;127.0.0.1:0|--page-server|port \"0\""
		"--image-path;$ROOT/ckpt/img;--status-fd;8|--status-fd|8 is not open for writing"
		"--image-path;$ROOT/ckpt/img;--status-fd;-2|--status-fd|-2 is not a file descriptor"
	)
	local c args want
	for c in "${cases[@]}"; do
		IFS='|' read -r -a want <<<"$c"
		IFS=';' read -r -a args <<<"${want[0]}"
		# fd 8 is open, but read-only.
		runcr checkpoint --leave-running "${args[@]}" "$CT" 8<"$ROOT/file"
		expect_refused "${want[@]:1}"
	done
	# Nothing went through the links, nothing was created anywhere.
	[ -z "$(ls -A "$ROOT/target")" ] || fail "written through a planted link: $(ls -A "$ROOT/target")"
	[ ! -e "$ROOT/nowhere" ]
	expect_snapshot "$before"
	expect_untouched "$token"
}

@test "checkpoint --page-server unreachable: fails naming it, the container runs on thawed, no checkpoint left" {
	use_counter_workload
	start_workload
	local token=$TOKEN port
	# A port nothing listens on.
	for port in $(seq 20000 20100); do port_listening "$port" || break; done
	runcr checkpoint --leave-running --page-server "127.0.0.1:$port" --image-path "$ROOT/image" "$CT"
	expect_refused "127.0.0.1:$port" "--page-server" "criu page-server"
	# The failed checkpoint leaves no manifest and no image to restore.
	[ ! -e "$ROOT/image/runcr-manifest.json" ]
	[ ! -e "$ROOT/image/inventory.img" ]
	expect_untouched "$token"
}

@test "checkpoint onto a full file system fails naming the image path and ENOSPC; the container runs on, thawed; no manifest is left" {
	use_memory_workload
	start_workload
	local token=$TOKEN
	mkdir "$ROOT/small"
	mount -t tmpfs -o size=1m,mode=0700 tmpfs "$ROOT/small"
	# The log goes elsewhere: on the full file system CRIU's own log lines
	# would be cut short.
	runcr checkpoint --work-path "$ROOT/work" --image-path "$ROOT/small/image" "$CT"
	expect_refused "$ROOT/small/image" "No space left on device" "is full"
	# runcr removes the "incomplete" manifest of a failed checkpoint; the
	# partial images stay for inspection but cannot be restored.
	[ ! -e "$ROOT/small/image/runcr-manifest.json" ]
	expect_untouched "$token"
	runcr restore -d --image-path "$ROOT/small/image" "$CT-restored"
	[ "$status" -ne 0 ]
	expect_state "$CT-restored" gone
}

@test "checkpoint of a paused container works; the restored container carries on" {
	use_memory_workload
	start_workload
	local token=$TOKEN
	runcr pause "$CT"
	[ "$status" -eq 0 ]
	expect_state "$CT" paused
	runcr checkpoint --image-path "$ROOT/image" "$CT"
	[ "$status" -eq 0 ]
	expect_state "$CT" gone
	read_state_file
	restore_detached "$CT" --image-path "$ROOT/image"
	expect_progress "$CT" "$COUNTER" "$token"
}

@test "restore: bad ids, an existing id, bad bundles, a terminal without --console-socket and a --pid-file in a missing dir are refused" {
	use_counter_workload
	start_workload
	local token=$TOKEN before cg
	cg=$(cgroup_dir "$(container_pid "$CT")")
	runcr checkpoint --leave-running --image-path "$ROOT/image" "$CT"
	[ "$status" -eq 0 ]
	read_state
	local at=$COUNTER
	# Bundles: none, malformed JSON, no process, a terminal.
	mkdir -p "$ROOT/badjson" "$ROOT/noproc" "$ROOT/tty"
	echo '{"ociVersion": ' >"$ROOT/badjson/config.json"
	jq 'del(.process)' "$BUNDLE/config.json" >"$ROOT/noproc/config.json"
	jq --arg r "$BUNDLE/rootfs" '.root.path = $r | .process.terminal = true' "$BUNDLE/config.json" >"$ROOT/tty/config.json"
	before=$(snapshot)

	# id ; arguments (;-separated) | what the message must say
	local cases=(
		";--bundle;$BUNDLE|container id is empty"
		"a/b;--bundle;$BUNDLE|container id \"a/b\""
		"..;--bundle;$BUNDLE|container id \"..\""
		"$CT;--bundle;$BUNDLE|already exists|\"$CT\"|another id"
		"$CT-new;--bundle;$ROOT/missing|--bundle|$ROOT/missing/config.json|no such file"
		"$CT-new;--bundle;$ROOT/badjson|--bundle|$ROOT/badjson/config.json is not a valid OCI config"
		"$CT-new;--bundle;$ROOT/noproc|--bundle|$ROOT/noproc/config.json has no process"
		"$CT-new;--bundle;$ROOT/tty|--console-socket|terminal"
		"$CT-new;--bundle;$BUNDLE;--pid-file;$ROOT/nodir/pid|--pid-file|$ROOT/nodir|does not exist"
	)
	local c args want id
	for c in "${cases[@]}"; do
		IFS='|' read -r -a want <<<"$c"
		IFS=';' read -r -a args <<<"${want[0]}"
		id=${args[0]}
		runcr restore -d --image-path "$ROOT/image" "${args[@]:1}" "$id" </dev/null
		expect_refused "${want[@]:1}"
	done
	runcr list -q
	[ "$output" = "$CT" ] || fail "containers now: $output"
	expect_snapshot "$before"
	[ -z "$(ls -d /sys/fs/cgroup/*/"$CT-new" 2>/dev/null)" ] || fail "cgroups left for $CT-new"
	[ -d "$cg" ]
	expect_untouched "$token"

	# The image is intact: with the original gone, it restores and carries on.
	runcr kill "$CT" KILL
	wait_for 50 0.1 container_stopped "$CT"
	runcr delete -f "$CT"
	restore_detached "$CT" --image-path "$ROOT/image"
	expect_progress "$CT" "$at" "$token"
}

@test "restore from truncated or corrupt images fails with the cause, leaves nothing behind; the good image then restores" {
	use_memory_workload
	start_workload
	local token=$TOKEN cg sums
	cg=$(cgroup_dir "$(container_pid "$CT")")
	runcr checkpoint --image-path "$ROOT/image" "$CT"
	[ "$status" -eq 0 ]
	expect_state "$CT" gone
	read_state_file
	sums=$(cd "$ROOT/image" && sha256sum ./*.img)

	local p core
	cp -a "$ROOT/image" "$ROOT/trunc"
	# shellcheck disable=SC2012 # image names are plain
	p=$(ls -S "$ROOT"/trunc/pages-*.img | head -1)
	truncate -s $(($(stat -c %s "$p") / 2)) "$p"
	cp -a "$ROOT/image" "$ROOT/inventory"
	printf 'garbage-garbage-garbage' | dd of="$ROOT/inventory/inventory.img" conv=notrunc status=none
	cp -a "$ROOT/image" "$ROOT/core"
	core=$ROOT/core/core-1.img # the container's init
	printf 'XXXXXXXXXXXXXXXX' | dd of="$core" bs=1 seek=8 conv=notrunc status=none
	# The manifest's digests would refuse these two before CRIU runs
	# (hostile.bats); without them, as in runc's images, CRIU's own
	# refusal is reported.
	local d
	for d in inventory core; do
		jq 'del(.images, .images_size)' "$ROOT/$d/runcr-manifest.json" >"$ROOT/m.json"
		mv "$ROOT/m.json" "$ROOT/$d/runcr-manifest.json"
	done

	# image dir | what the message must say
	local cases=(
		"trunc|--image-path|$p is truncated|intact copy"
		"inventory|Magic doesn't match for inventory.img|$ROOT/inventory/restore.log"
		"core|$(basename "$core")|$ROOT/core/restore.log"
	)
	local c want
	for c in "${cases[@]}"; do
		IFS='|' read -r -a want <<<"$c"
		runcr restore -d --image-path "$ROOT/${want[0]}" "$CT" </dev/null
		expect_refused "${want[@]:1}"
		expect_state "$CT" gone
		[ ! -e "$STATE/$CT" ] || fail "state left under --root: $(ls "$STATE/$CT")"
		[ ! -d "$cg" ] || fail "cgroup $cg left"
		[ -z "$(procs_in_rootfs)" ] || fail "processes left: $(procs_in_rootfs)"
	done
	[ "$(cd "$ROOT/image" && sha256sum ./*.img)" = "$sums" ] || fail "the good image changed"
	restore_detached "$CT" --image-path "$ROOT/image"
	expect_progress "$CT" "$COUNTER" "$token"
	# The check for leftover processes does see the container's.
	[ -n "$(procs_in_rootfs)" ] || fail "procs_in_rootfs finds no process of the running container"
}

@test "--criu naming a missing file, a directory, /bin/false or a criu that never answers is refused at once, naming the flag; nothing left behind" {
	requires runcr
	use_counter_workload
	start_workload
	local token=$TOKEN before c start
	printf '#!/bin/sh\nsleep 300\n' >"$ROOT/hang-criu"
	chmod +x "$ROOT/hang-criu"
	before=$(snapshot)
	for c in "$ROOT/missing" "$ROOT" /bin/false /bin/true "$ROOT/hang-criu"; do
		start=$SECONDS
		runcr --criu "$c" checkpoint --image-path "$ROOT/img" "$CT"
		expect_refused "--criu" "$c"
		[ $((SECONDS - start)) -lt 30 ] || fail "--criu $c took $((SECONDS - start)) s to refuse"
		expect_untouched "$token"
		runcr --criu "$c" check
		expect_refused "--criu" "$c"
	done
	expect_snapshot "$before"
	! pgrep -f "$ROOT/hang-criu" || fail "the hung criu was left running"
	[ -z "$(find "${TMPDIR:-/tmp}" -maxdepth 1 -name 'runcr-criu-*' -newer "$ROOT/hang-criu")" ] || fail "a runcr-criu-* link was left behind"
}
