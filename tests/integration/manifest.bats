#!/usr/bin/env bats
# The manifest (runcr-manifest.json) every runcr checkpoint writes, and the
# restores it makes possible without saying everything again.

# shellcheck disable=SC2153 # TOKEN, COUNTER, ... are set by helpers
load helpers

MANIFEST=runcr-manifest.json

@test "checkpoint writes a complete manifest: id, bundle, config digest, versions, options, CRIU's statistics" {
	requires runcr
	use_memory_workload
	start_workload
	runcr checkpoint --leave-running --file-locks --image-path ./image "$CT"
	[ "$status" -eq 0 ]
	local m=./image/$MANIFEST criu_version
	[ -f "$m" ] || fail "no $MANIFEST"
	log "$(cat "$m")"
	[ "$(stat -c %a "$m")" = 600 ]
	[ "$(jq -r .version "$m")" = 1 ]
	[ "$(jq -r .state "$m")" = complete ]
	[ "$(jq -r .container_id "$m")" = "$CT" ]
	[ "$(jq -r .bundle "$m")" = "$BUNDLE" ]
	[ "$(jq -r .rootfs "$m")" = "$BUNDLE/rootfs" ]
	[ "$(jq -r .config_digest "$m")" = "sha256:$(sha256sum <"$BUNDLE/config.json" | cut -d' ' -f1)" ]
	criu_version=$(criu --version | sed -n 's/^Version: *//p')
	[ "$(jq -r .versions.criu "$m")" = "$criu_version" ]
	[ "$(jq -r .versions.kernel "$m")" = "$(uname -r)" ]
	[ "$(jq -r .versions.libcontainer "$m")" = v1.4.4 ]
	[ "$(jq -r .versions.runcr "$m")" = "$("$RUNCR" --version | sed -n 's/^runcr version //p')" ]
	[ "$(jq -r .options.leave_running "$m")" = true ]
	[ "$(jq -r .options.file_locks "$m")" = true ]
	[ "$(jq -r .options.tcp_established "$m")" = null ]
	# The statistics are CRIU's own: frozen for some time, the workload's
	# ~4 MB of strings among the pages written.
	[ "$(jq -r .dump_stats.frozen_time "$m")" -gt 0 ]
	[ "$(jq -r .dump_stats.pages_written "$m")" -gt 1000 ]
	local created completed
	created=$(date -d "$(jq -r .created "$m")" +%s)
	completed=$(date -d "$(jq -r .completed "$m")" +%s)
	[ "$completed" -ge "$created" ]
	[ $(($(date +%s) - created)) -lt 120 ]
}

@test "a failed checkpoint leaves no manifest and a running container" {
	requires runcr
	use_memory_workload
	start_workload
	local token=$TOKEN
	# Nothing listens there: CRIU fails once it tries to send the pages.
	runcr checkpoint --page-server 127.0.0.1:1 --image-path ./image "$CT"
	[ "$status" -ne 0 ]
	[ ! -e "./image/$MANIFEST" ] || fail "a failed checkpoint left $(cat "./image/$MANIFEST")"
	# shellcheck disable=SC2010 # image names are plain
	ls -a ./image | grep -q "^\.$MANIFEST" && fail "a temporary manifest was left"
	expect_state "$CT" running
	read_state
	expect_progress "$CT" "$COUNTER" "$token"
}

@test "restore with neither --bundle nor a bundle as working directory uses the manifest's bundle" {
	requires runcr
	use_memory_workload
	start_workload
	local token=$TOKEN image=$BUNDLE/image elsewhere=$ROOT/elsewhere
	runcr checkpoint --image-path "$image" "$CT"
	[ "$status" -eq 0 ]
	read_state_file
	mkdir "$elsewhere"
	cd "$elsewhere"
	restore_detached "$CT" --image-path "$image"
	expect_progress "$CT" "$COUNTER" "$token"
	# Nothing was written where restore ran.
	[ -z "$(ls -A "$elsewhere")" ]
}

@test "restore applies the options that must match the dump (--file-locks) from the manifest: the lock is held again" {
	requires runcr flocker
	install -m 0755 "$FLOCKER" "$BUNDLE/rootfs/bin/flocker"
	use_counter_workload 'flocker /tmp/lock &
'
	start_workload
	local token=$TOKEN lock=$BUNDLE/rootfs/tmp/lock
	wait_for 50 0.1 lock_is_held "$lock"
	runcr checkpoint --file-locks --image-path ./image "$CT"
	[ "$status" -eq 0 ]
	read_state_file
	# Without the option CRIU restores the processes but silently drops
	# their lock (as runc does unless told --file-locks again) ...
	cp "./image/$MANIFEST" "$ROOT/m"
	jq 'del(.options.file_locks)' "$ROOT/m" >"./image/$MANIFEST"
	restore_detached "$CT" --image-path ./image
	run ! lock_is_held "$lock"
	runcr kill "$CT" KILL
	wait_for 50 0.1 container_stopped "$CT"
	runcr delete "$CT"
	[ "$status" -eq 0 ]
	# ... and with the manifest as checkpoint wrote it, the lock is back.
	cp "$ROOT/m" "./image/$MANIFEST"
	restore_detached "$CT" --image-path ./image
	lock_is_held "$lock"
	expect_progress "$CT" "$COUNTER" "$token"
}

@test "restore refuses a checkpoint whose manifest says incomplete, and leaves nothing behind" {
	requires runcr
	use_memory_workload
	start_workload
	runcr checkpoint --image-path ./image "$CT"
	[ "$status" -eq 0 ]
	read_state_file
	local token=$TOKEN at=$COUNTER
	# What a checkpoint killed midway leaves.
	jq '.state = "incomplete" | del(.completed, .dump_stats)' "./image/$MANIFEST" >"$ROOT/m" &&
		cp "$ROOT/m" "./image/$MANIFEST"
	runcr restore -d --image-path ./image "$CT"
	[ "$status" -ne 0 ]
	[[ $output == *"incomplete"* && $output == *"$BUNDLE/image"* ]] || fail "unclear error: $output"
	expect_state "$CT" gone
	# The images are as they were: with the manifest put right, they restore.
	jq '.state = "complete"' "$ROOT/m" >"./image/$MANIFEST"
	restore_detached "$CT" --image-path ./image
	expect_progress "$CT" "$at" "$token"
}

@test "restore says a mount changed since the checkpoint, in runcr-restore.log and --log, never in the container's streams" {
	requires runcr
	use_memory_workload
	start_workload
	local token=$TOKEN
	runcr checkpoint --image-path ./image "$CT"
	[ "$status" -eq 0 ]
	read_state_file
	update_config '.mounts += [{type: "tmpfs", source: "tmpfs", destination: "/extra", options: ["nosuid"]}]'
	restore_detached "$CT" --image-path ./image
	expect_progress "$CT" "$COUNTER" "$token"
	# The restored container's stdout/stderr were runcr's: nothing but
	# the application's own lines there.
	! grep -v '^[0-9]* [0-9]* [A-Z]*$' "$CT_OUT" | grep . || fail "runcr wrote into the container's streams: $(cat "$CT_OUT")"
	# Beside CRIU's restore.log (no --work-path: the image directory).
	grep -qF "in what CRIU restores (mounts added: tmpfs /extra)" ./image/runcr-restore.log ||
		fail "no warning in runcr-restore.log: $(cat ./image/runcr-restore.log)"

	# With --log, as containerd and Podman give it: there, in its format.
	runcr checkpoint --image-path ./image2 "$CT"
	[ "$status" -eq 0 ]
	read_state_file
	update_config '.mounts += [{type: "tmpfs", source: "tmpfs", destination: "/extra2", options: ["nosuid"]}]'
	: >"$CT_OUT"
	runcr_with_pipes --log "$ROOT/runcr.log" --log-format json restore -d --image-path ./image2 "$CT" || fail "restore failed"
	expect_progress "$CT" "$COUNTER" "$token"
	jq -e 'select(.level == "warning") | .msg | contains("mounts added: tmpfs /extra2")' "$ROOT/runcr.log" >/dev/null ||
		fail "no JSON warning in --log: $(cat "$ROOT/runcr.log")"
	! grep -v '^[0-9]* [0-9]* [A-Z]*$' "$CT_OUT" | grep . || fail "runcr wrote into the container's streams: $(cat "$CT_OUT")"
}

@test "restore with the config an engine rewrites for every restore (CRI-O) warns nowhere; a failed one shows its warnings with the error" {
	requires runcr
	mkdir -p "$ROOT/src1" "$ROOT/src2" "$BUNDLE/rootfs/data"
	update_config '.mounts += [{type: "bind", source: "'"$ROOT/src1"'", destination: "/data", options: ["rbind"]}]
		| .annotations = {"io.kubernetes.cri-o.Created": "1"}'
	use_memory_workload
	start_workload
	local token=$TOKEN
	runcr checkpoint --image-path ./image "$CT"
	[ "$status" -eq 0 ]
	read_state_file
	# What CRI-O changes at every restore: hostname and HOSTNAME, mount
	# sources, annotations, the cgroups path.
	update_config '.hostname = "restored" | .process.env += ["HOSTNAME=restored"]
		| (.mounts[] | select(.destination == "/data")).source = "'"$ROOT/src2"'"
		| .annotations = {"io.kubernetes.cri-o.Created": "2", "io.kubernetes.cri-o.Restored": "true"}
		| .linux.cgroupsPath = "runcr-test-restored-'"$$"'"'
	restore_detached "$CT" --image-path ./image
	expect_progress "$CT" "$COUNTER" "$token"
	! grep -v '^[0-9]* [0-9]* [A-Z]*$' "$CT_OUT" | grep . || fail "runcr wrote into the container's streams: $(cat "$CT_OUT")"
	[ ! -s ./image/runcr-restore.log ] || fail "warned: $(cat ./image/runcr-restore.log)"

	# A restore that fails says everything on stderr, warnings included.
	runcr checkpoint --image-path ./image2 "$CT"
	[ "$status" -eq 0 ]
	update_config '.mounts += [{type: "tmpfs", source: "tmpfs", destination: "/extra", options: ["nosuid"]}]'
	rm ./image2/pages-*.img
	runcr restore -d --image-path ./image2 "$CT"
	[ "$status" -ne 0 ]
	[[ $output == *"mounts added: tmpfs /extra"* ]] || fail "the failed restore hid its warning"
}

@test "restore into a new network namespace, as Podman does each time, is no config change to warn about" {
	requires runcr netns
	setup_netns
	use_counter_workload
	start_workload
	local token=$TOKEN first=$NS pid
	runcr checkpoint --image-path ./image "$CT"
	[ "$status" -eq 0 ]
	read_state_file
	NS=${first}b
	ip netns add "$NS" || fail "ip netns add $NS failed"
	NETNS+=("$NS")
	NS_PATH=/run/netns/$NS
	# shellcheck disable=SC2016 # a jq variable
	update_config --arg p "$NS_PATH" '(.linux.namespaces[] | select(.type == "network")).path = $p'
	restore_detached "$CT" --image-path ./image
	! grep -q "changed since the checkpoint" "$CT_OUT" || fail "warned about a namespace path: $(cat "$CT_OUT")"
	pid=$(container_pid "$CT")
	[ "$(stat -L -c %i "/proc/$pid/ns/net")" = "$(netns_inode "$NS_PATH")" ]
	expect_progress "$CT" "$COUNTER" "$token"
}

@test "a manifest from a newer runcr or a corrupt one is refused, naming the image path" {
	requires runcr
	use_memory_workload
	start_workload
	runcr checkpoint --image-path ./image "$CT"
	[ "$status" -eq 0 ]
	local good=$ROOT/good
	cp "./image/$MANIFEST" "$good"
	jq '.version = 99' "$good" >"./image/$MANIFEST"
	runcr restore -d --image-path ./image "$CT"
	[ "$status" -ne 0 ]
	[[ $output == *"--image-path"* && $output == *"version 99"* && $output == *"newer runcr"* ]] || fail "unclear error: $output"
	expect_state "$CT" gone
	echo '{"version": 1, "state": ' >"./image/$MANIFEST"
	runcr restore -d --image-path ./image "$CT"
	[ "$status" -ne 0 ]
	[[ $output == *"--image-path"* && $output == *"$MANIFEST"* ]] || fail "unclear error: $output"
	expect_state "$CT" gone
}
