#!/usr/bin/env bats
# runcr migrate / runcr receive: a running container moved to another
# "host" (a network namespace with its own runc root and bundle directory)
# over exec:, committed only once the target runs it, rolled back on any
# failure before that.

# shellcheck disable=SC2153 # TOKEN, COUNTER, ... are set by helpers
load helpers

setup() {
	setup_common
	setup_bundle
	requires runcr netns
	export TMPDIR=$ROOT/tmp
	mkdir -p "$TMPDIR"
	# Host B: its own network namespace, runc root and bundle directory.
	HOSTB=rcr-$$-${BATS_TEST_NUMBER}b
	ip netns add "$HOSTB" || fail "ip netns add $HOSTB failed"
	NETNS+=("$HOSTB")
	ip -n "$HOSTB" link set lo up
	STATE_B=$ROOT/state-b
	BUNDLE_B=$ROOT/hostb/bundle
	mkdir -p "$STATE_B" "$ROOT/hostb"
	CT_B=$CT-b
}

# The helpers' teardown, run after host B's containers are gone (the
# stdio loggers receive starts exit with them).
eval "$(declare -f teardown | sed '1s/^teardown/teardown_helpers/')"

teardown() {
	local ct
	for ct in $("$RUNCR" --root "$STATE_B" list -q 2>/dev/null); do
		"$RUNCR" --root "$STATE_B" delete -f "$ct" >/dev/null 2>&1
	done
	teardown_helpers
}

# The exec: destination that runs receive in host B.
dest_b() {
	echo "exec:nsenter --net=/run/netns/$HOSTB $RUNCR --root $STATE_B receive --bundle $BUNDLE_B --id $CT_B"
}

# runcr migrate, logged, with its stderr in the output.
migrate() {
	runcr migrate "$@"
}

# runcr on host B.
runcr_b() {
	run env "${CRIU_ENV[@]}" timeout -k 5 "$RUNCR_TEST_TIMEOUT" "$RUNCR" --root "$STATE_B" "$@"
	log "\$ [host b] runcr --root $STATE_B $* (status=$status)"
	[ -n "$output" ] && log "$output"
	return 0
}

# Reads the workload's state on host B into COUNTER, TOKEN, MEM.
read_state_b() {
	local _
	for _ in $(seq 20); do
		runcr_b exec "$CT_B" cat /tmp/state
		if [ "$status" -eq 0 ] && [[ $output =~ ^[0-9]+\ [0-9a-f]+\ [A-Z]+$ ]]; then
			read -r COUNTER TOKEN MEM <<<"$output"
			return 0
		fi
		sleep 0.1
	done
	fail "can't read /tmp/state of $CT_B on host b"
}

# Waits until the workload on B counts past $1 with token $2, memory intact.
expect_progress_b() {
	local after=$1 token=$2 _
	for _ in $(seq 50); do
		read_state_b
		[ "$COUNTER" -gt "$after" ] && break
		sleep 0.2
	done
	log "state on b: counter $COUNTER (was $after), token $TOKEN (was $token), memory $MEM"
	[ "$COUNTER" -gt "$after" ] || fail "counter stuck at $COUNTER on b"
	[ "$TOKEN" = "$token" ] || fail "token changed on b: the workload restarted"
	[ "$MEM" = OK ] || fail "the workload on b found its memory $MEM"
}

# Host B holds nothing: no container, no bundle, no image or temp files.
expect_clean_b() {
	runcr_b list -q
	[ -z "$output" ] || fail "containers left on b: $output"
	[ ! -e "$BUNDLE_B" ] || fail "bundle left on b: $(ls -A "$BUNDLE_B")"
	[ -z "$(ls -A "$TMPDIR")" ] || fail "left in \$TMPDIR: $(ls -A "$TMPDIR")"
	! grep -q " $ROOT/hostb" /proc/self/mountinfo || fail "mounts left under $ROOT/hostb"
}

# Host B's pre-existing bundle (a copy of the source's) holds nothing
# new: no container, no stdio log; no image or temp files.
expect_clean_b_kept_bundle() {
	runcr_b list -q
	[ -z "$output" ] || fail "containers left on b: $output"
	[ -f "$BUNDLE_B/config.json" ] || fail "the bundle on b lost its config.json"
	[ ! -e "$BUNDLE_B/$CT_B.stdio.log" ] || fail "stdio log left on b"
	[ -z "$(ls -A "$TMPDIR")" ] || fail "left in \$TMPDIR: $(ls -A "$TMPDIR")"
	! grep -q " $ROOT/hostb" /proc/self/mountinfo || fail "mounts left under $ROOT/hostb"
}

# Gives host B a bundle holding the same rootfs as the source's: only the
# changes are sent, and the stream is mostly the dump.
same_bundle_b() {
	cp -a "$BUNDLE" "$BUNDLE_B"
}

# The source runs on: the same process, counting past $1, memory intact.
expect_source_intact() {
	expect_state "$CT" running
	expect_progress "$CT" "$1" "$2"
}

@test "migrate over exec: moves a running container to host b: the counter carries on, memory intact; the source is gone" {
	use_memory_workload
	start_workload
	local token=$TOKEN

	migrate --print-stats "$CT" "$(dest_b)"
	[ "$status" -eq 0 ] || fail "migrate failed"
	local json
	json=$(sed -n '/^{/,/^}/p' <<<"$output")
	jq -e '.downtime_seconds > 0 and .total_seconds >= .downtime_seconds and .bytes_sent > 0' <<<"$json" >/dev/null ||
		fail "no sensible stats: $json"
	jq -e '[.steps[].name] | index("handshake") != null and index("bundle") != null and index("dump") != null and index("restore") != null and index("commit") != null' <<<"$json" >/dev/null ||
		fail "steps missing: $json"
	read_state_file
	local at=$COUNTER

	expect_state "$CT" gone
	runcr_b state "$CT_B"
	[ "$(jq -r .status <<<"$output")" = running ] || fail "not running on b"
	expect_progress_b "$at" "$token"
	# The bundle was sent: config.json and the rootfs, the workload too.
	[ -f "$BUNDLE_B/config.json" ] && [ -f "$BUNDLE_B/rootfs/memtest.awk" ] || fail "bundle not sent"
	# Its stdio is a pipe into the log, never the transport.
	local pid
	pid=$(jq -r .target_pid <<<"$json")
	[[ $(readlink "/proc/$pid/fd/1") == pipe:* ]] || fail "stdout on b: $(readlink "/proc/$pid/fd/1")"
	[ -f "$BUNDLE_B/$CT_B.stdio.log" ] || fail "no stdio log on b"
	[ -z "$(ls -A "$TMPDIR")" ] || fail "left in \$TMPDIR: $(ls -A "$TMPDIR")"
}

@test "migrate: receiver refuses (id taken on b): source untouched, never frozen; nothing made on b" {
	use_memory_workload
	start_workload
	local token=$TOKEN at=$COUNTER
	mkdir -p "$STATE_B/$CT_B"

	migrate "$CT" "$(dest_b)"
	[ "$status" -ne 0 ] || fail "migrate succeeded"
	[[ $output == *'step handshake failed'* ]] || fail "error doesn't name the handshake"
	[[ $output == *"already exists"* ]] || fail "error doesn't say why"
	[[ $output == *"runs on, untouched"* ]] || fail "error doesn't say the source is untouched"
	rmdir "$STATE_B/$CT_B"
	expect_source_intact "$at" "$token"
	expect_clean_b
}

@test "migrate: transport breaks mid-dump (receiver's input cut): rolled back, source thawed with memory intact, b clean" {
	use_memory_workload
	start_workload
	local token=$TOKEN at=$COUNTER
	same_bundle_b
	# 400 KiB pass (dd bs=1: no buffering), then the receiver's input ends: inside the dump, which
	# --compress none makes megabytes long.
	local dest="exec:dd bs=1 count=409600 2>/dev/null | nsenter --net=/run/netns/$HOSTB $RUNCR --root $STATE_B receive --bundle $BUNDLE_B --id $CT_B"
	migrate --compress none "$CT" "$dest"
	[ "$status" -ne 0 ] || fail "migrate succeeded"
	[[ $output == *'step dump failed'* || $output == *'step restore failed'* ]] || fail "error doesn't name the dump or restore step"
	[[ $output == *"thawed and runs on where it stopped"* ]] || fail "error doesn't say the source was thawed"
	expect_source_intact "$at" "$token"
	expect_clean_b_kept_bundle
	# The rootfs changes were sent: the pre-existing bundle now has the
	# source's latest /tmp/state.
	[ -f "$BUNDLE_B/rootfs/tmp/state" ] || fail "rootfs changes not sent"
}

@test "migrate: restore fails on b (import over --import-limit): rolled back, source thawed with memory intact, b clean" {
	use_memory_workload
	start_workload
	local token=$TOKEN at=$COUNTER
	migrate --compress none "$CT" "exec:nsenter --net=/run/netns/$HOSTB $RUNCR --root $STATE_B receive --import-limit 1M --bundle $BUNDLE_B --id $CT_B"
	[ "$status" -ne 0 ] || fail "migrate succeeded"
	[[ $output == *'step restore failed'* ]] || fail "error doesn't name the restore step"
	[[ $output == *"thawed and runs on where it stopped"* ]] || fail "error doesn't say the source was thawed"
	expect_source_intact "$at" "$token"
	expect_clean_b
}

@test "migrate: SIGTERM to migrate while the container is frozen: rolled back, source thawed with memory intact, b clean" {
	use_memory_workload
	start_workload
	local token=$TOKEN at=$COUNTER
	same_bundle_b
	# A transport that stalls inside the dump, so that the signal lands
	# while the source is frozen.
	local dest="exec:{ dd bs=1 count=409600 2>/dev/null; sleep 20; cat; } | nsenter --net=/run/netns/$HOSTB $RUNCR --root $STATE_B receive --bundle $BUNDLE_B --id $CT_B"
	setsid env "${CRIU_ENV[@]}" "$RUNCR" --root "$STATE" migrate --compress none "$CT" "$dest" >"$ROOT/mig.out" 2>&1 3>&- &
	local mpid=$! _
	BG_PIDS+=("$mpid")
	for _ in $(seq 50); do
		grep -q "freeze done" "$ROOT/mig.out" && break
		sleep 0.1
	done
	sleep 1
	expect_state "$CT" paused
	kill -TERM "$mpid"
	local rc=0
	wait "$mpid" || rc=$?
	log "migrate after SIGTERM: status $rc: $(cat "$ROOT/mig.out")"
	[ "$rc" -ne 0 ] || fail "migrate succeeded despite SIGTERM"
	grep -q "rolled back: container .*$CT.* was thawed and runs on" "$ROOT/mig.out" || fail "no rollback reported"
	expect_source_intact "$at" "$token"
	expect_clean_b_kept_bundle
}

@test "migrate: --lazy-pages and --pre-dump-rounds are checked on this host before the container is touched" {
	use_memory_workload
	start_workload
	local token=$TOKEN at=$COUNTER
	if ! probe criu_lazy_pages; then
		migrate --lazy-pages "$CT" "$(dest_b)"
		[ "$status" -ne 0 ] || fail "--lazy-pages accepted where lazy pages fail"
		[[ $output == *"--lazy-pages"* && $output == *"not touched"* ]] || fail "no reason given"
		expect_source_intact "$at" "$token"
		expect_clean_b
	else
		log "lazy pages work here: $PROBE_RESULT"
	fi
	if ! criu check --feature mem_dirty_track >/dev/null 2>&1; then
		read_state
		at=$COUNTER
		migrate --pre-dump-rounds 2 "$CT" "$(dest_b)"
		[ "$status" -eq 0 ] || fail "migrate --pre-dump-rounds failed"
		[[ $output == *"--pre-dump-rounds 2 skipped: this kernel does not track dirty memory"* ]] || fail "skip not said"
		expect_progress_b "$at" "$token"
	fi
}
