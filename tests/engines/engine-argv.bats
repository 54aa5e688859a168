#!/usr/bin/env bats
# The exact argv (and environment) the engines send, fed to runcr directly,
# without the engines: CRI-O (not packaged for bookworm; argv from its
# internal/oci/runtime_oci.go and conmon's restore argv), plus the flags
# Podman/conmon and containerd/go-runc send that runc v1.4.4 rejects. Each
# test restores and proves the workload continues with its memory intact.

load helpers

setup() {
	requires_root
	engines_setup_bin
	ROOT=$BATS_TEST_TMPDIR/root
	B=$BATS_TEST_TMPDIR/bundle
	ID=ea-$BATS_TEST_NUMBER-$$
	mkdir -p "$ROOT" "$B"
	cp -a "$ROOTFS" "$B/rootfs"
	(cd "$B" && "$RUNC_BIN" spec)
	local tmp
	tmp=$(jq --arg w "$WORKLOAD" '.process.args = ["sh", "-c", $w] | .process.terminal = false |
		.root.readonly = false' "$B/config.json") && echo "$tmp" >"$B/config.json"
	# shellcheck disable=SC2034 # read by helpers.bash
	MARK=$(argv_mark)
}

teardown() {
	"$RUNC_BIN" --root "$ROOT" kill "$ID" KILL >/dev/null 2>&1 || true
	sleep 0.3
	"$RUNC_BIN" --root "$ROOT" delete -f "$ID" >/dev/null 2>&1 || true
}

: "${RUNC_BIN:=/usr/local/sbin/runc}"
# runcr itself, not the logging wrapper: the environment must reach it as given.
W=$RUNCR

state_reader() {
	cat "$B/rootfs/tmp/state"
}

# Starts the workload with runcr (passed through to runc), detached, with
# stdio on files as an engine would give it.
start_workload() {
	# stdout/stderr on a pipe, as engines give them (a host file would be
	# outside the container's mounts, which CRIU refuses); cat drains it.
	("$W" --root "$ROOT" run -d --bundle "$B" --pid-file "$B/run.pid" "$ID" </dev/null 2>&1 | cat >"$B/stdout") 3>&- &
	local i
	for ((i = 0; i < 50; i++)); do
		[ -s "$B/run.pid" ] && break
		sleep 0.2
	done
	[ -s "$B/run.pid" ] || { cat "$B/stdout" >&2; return 1; }
	wait_state state_reader 2
}

@test "CRI-O: checkpoint argv (runtimeCmd: no PATH in env), then conmon's restore argv" {
	start_workload
	local before=$COUNTER md5=$MD5 img=$B/checkpoint work=$B
	# runtime_oci.go CheckpointContainer -> runtimeCmd: env holds only
	# XDG_RUNTIME_DIR when CRI-O has it set (cmd.Env starts empty).
	frun env -i XDG_RUNTIME_DIR=/run/user/0 "$W" --root "$ROOT" checkpoint --file-locks \
		--image-path "$img" --work-path "$work" "$ID"
	[ "$status" -eq 0 ]
	[ -s "$work/dump.log" ] || fail "no dump.log in the work path (CRI-O reads c.Dir()/dump.log)"
	[ -f "$img/inventory.img" ]
	# conmon (CRI-O passes --runtime-arg --root=R, --restore PATH; env has
	# PATH only on restore) runs:
	frun env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin XDG_RUNTIME_DIR=/run/user/0 \
		"$W" --root="$ROOT" restore --bundle "$B" --pid-file "$B/pidfile" --detach \
		--image-path "$img" --work-path "$B" "$ID"
	[ "$status" -eq 0 ]
	[ -s "$B/restore.log" ] || fail "no restore.log in the work path (CRI-O pre-creates <bundle>/restore.log)"
	[ -s "$B/pidfile" ] || fail "no pid file after a detached restore"
	kill -0 "$(cat "$B/pidfile")" || fail "pid file names no live process"
	assert_continues state_reader "$before" "$md5"
}

@test "CRI-O: checkpoint --leave-running, restore with --lsm-profile=selinux:... --lsm-mount-context=... (= form)" {
	start_workload
	local img=$B/checkpoint
	frun env -i "$W" --root "$ROOT" checkpoint --file-locks --image-path "$img" --work-path "$B" --leave-running "$ID"
	[ "$status" -eq 0 ]
	wait_state state_reader "$COUNTER"
	frun "$W" --root "$ROOT" kill "$ID" KILL
	sleep 0.5
	frun "$W" --root "$ROOT" delete -f "$ID"
	frun env -i PATH=/usr/local/sbin:/usr/bin:/sbin:/bin "$W" --root="$ROOT" restore --bundle "$B" \
		--pid-file "$B/pidfile" --detach --image-path "$img" --work-path "$B" \
		--lsm-profile=selinux:system_u:system_r:container_t:s0:c1,c2 \
		--lsm-mount-context=system_u:object_r:container_file_t:s0:c1,c2 "$ID"
	# The flags must parse; on a host without SELinux runcr may refuse them,
	# but then with a reason, never a usage error.
	[[ "$output" != *"flag provided but not defined"* ]]
	[[ "$output" != *"Incorrect Usage"* ]]
	if [ "$status" -ne 0 ]; then
		[ -d /sys/fs/selinux ] && fail "restore with SELinux labels failed on an SELinux host"
		[[ "$output" =~ [Ss][Ee][Ll]inux|lsm ]] || fail "refused without naming SELinux/LSM: $output"
	fi
}

@test "capability probes: checkpoint --help exits 0; restore --lsm-mount-context needs an argument; features" {
	frun "$W" checkpoint --help
	[ "$status" -eq 0 ]
	frun "$W" restore --lsm-mount-context
	[ "$status" -ne 0 ]
	[[ "$output" == *"flag needs an argument"* ]]
	frun "$W" features
	[ "$status" -eq 0 ]
	echo "$output" | jq -e '.annotations["org.opencontainers.runc.checkpoint.enabled"] == "true"'
}

@test "containerd/go-runc restore argv: --parent-path on restore, -no-subreaper (single dash)" {
	start_workload
	local before=$COUNTER md5=$MD5 img=$B/ck work=$B/work
	# pkg/process/init.go checkpoint (leave-running unless --exit).
	frun "$W" --root "$ROOT" --log "$B/log.json" --log-format json checkpoint --image-path "$img" --work-path "$work" "$ID"
	[ "$status" -eq 0 ]
	# go-runc RestoreOpts.args(): CheckpointOpts.args() (so --parent-path
	# when the shim has a parent checkpoint), --detach, --pid-file ABS,
	# -no-subreaper; then --bundle B ID.
	mkdir -p "$B/parent"
	frun "$W" --root "$ROOT" --log "$B/log.json" --log-format json restore --image-path "$img" --work-path "$work" \
		--parent-path ../parent --detach --pid-file "$B/init.pid" -no-subreaper --bundle "$B" "$ID"
	[ "$status" -eq 0 ]
	[ -s "$B/init.pid" ]
	assert_continues state_reader "$before" "$md5"
}

@test "Podman/conmon argv: --leave-running twice; restore --no-new-keyring --tcp-close --preserve-fds 0" {
	start_workload
	local before=$COUNTER md5=$MD5 img=$B/checkpoint
	frun "$W" --root "$ROOT" checkpoint --image-path "$img" --work-path "$B" --leave-running --leave-running "$ID"
	[ "$status" -eq 0 ]
	frun "$W" --root "$ROOT" kill "$ID" KILL
	sleep 0.5
	frun "$W" --root "$ROOT" delete -f "$ID"
	frun "$W" --root "$ROOT" --log-format=json --log "$B/oci-log" restore --bundle "$B" --pid-file "$B/pidfile" \
		--no-new-keyring --detach --image-path "$img" --work-path "$B" --tcp-close --preserve-fds 0 "$ID"
	[ "$status" -eq 0 ]
	assert_continues state_reader "$before" "$md5"
}

@test "--log FILE --log-format json: one JSON object a line with level, msg, RFC 3339 time; error also on stderr" {
	frun "$W" --root "$BATS_TEST_TMPDIR/root" --log "$BATS_TEST_TMPDIR/log.json" --log-format json \
		restore --bundle "$B" --image-path "$BATS_TEST_TMPDIR/nonexistent" nosuchctr
	[ "$status" -ne 0 ]
	[ -n "$output" ] || fail "the error was not written to stderr"
	cat "$BATS_TEST_TMPDIR/log.json" >&2
	while IFS= read -r line; do
		echo "$line" | jq -e 'has("level") and has("msg") and has("time") and
			(.time | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$"))' >/dev/null ||
			fail "not a {level,msg,time} JSON line: $line"
	done <"$BATS_TEST_TMPDIR/log.json"
	tail -1 "$BATS_TEST_TMPDIR/log.json" | jq -e '.level == "error"'
	# Podman reads the file with ONE json.Unmarshal: a failed command should
	# leave exactly one object (the error) for the cause to reach the user.
	[ "$(grep -c . "$BATS_TEST_TMPDIR/log.json")" -eq 1 ] || fail "more than one JSON object: Podman cannot parse the file"
}
