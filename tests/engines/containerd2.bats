#!/usr/bin/env bats
# containerd 2.4 and 2.3 through CRI (crictl), built by
# tests/setup/install-containerd2.sh. One private containerd per version,
# each with two runtime handlers: "runcr" (runcr via the logging wrapper as
# the runc options' BinaryName) and "runc" (runc v1.4.4, the reference). Every
# test runs for both handlers: what passes with runc must pass with runcr.
#
# CRI CheckpointContainer (crictl checkpoint --export) leaves the container
# running (Kubernetes' forensic checkpointing). Restore goes through
# CreateContainer with the archive as the image, in a new pod: containerd
# 2.3 has it behind enable_experimental_restore_via_create; 2.4 removed it.

load helpers
load containerd2

setup_file() {
	requires_root
	local v
	for v in $CTRD2_VERSIONS; do
		ctrd2_start "$v"
	done
}

teardown_file() {
	engines_save_argv_log "containerd2"
	local v
	for v in $CTRD2_VERSIONS; do
		ctrd2_stop "$v"
	done
	ctrd2_remove_cgroup_parent
}

setup() {
	requires_root
	MARK=$(argv_mark)
}

teardown() {
	if [ -n "${NEW_ID:-}" ]; then
		"$RUNCR" kill "$NEW_ID" KILL >/dev/null 2>&1 || true
		sleep 0.3
		"$RUNCR" delete -f "$NEW_ID" >/dev/null 2>&1 || true
	fi
	log "--- runtime calls (runcr) in this test:"
	argv_log_since "$MARK" >&2 || true
	[ -n "${C2_DIR:-}" ] || return 0
	ctrd2_remove_pods
	grep -iE 'level=(error|warning)' "$C2_DIR/containerd.log" | grep -ivE 'deprecat|cni' | tail -15 >&2 || true
}

# checkpoint_running VERSION HANDLER: a pod with the counter workload;
# crictl checkpoint --export; the archive has CRIU's images and containerd's
# metadata; the container is still running and counts on, memory intact.
# Leaves BEFORE, MD5_BEFORE, ARCHIVE set.
checkpoint_running() {
	local v=$1 h=$2
	requires_ctrd2 "$v"
	ctrd2_use "$v"
	ctrd2_workload "ck-$h" "$h"
	wait_state ctrd2_reader 2
	BEFORE=$COUNTER MD5_BEFORE=$MD5 ARCHIVE=$BATS_TEST_TMPDIR/ckpt-$h.tar
	crictl_ checkpoint --export="$ARCHIVE" "$CID"
	[ "$status" -eq 0 ]
	[ -s "$ARCHIVE" ]
	ctrd2_check_archive "$ARCHIVE"
	# Kubernetes' checkpoint leaves the container running.
	[ "$(ctrd2_state "$CID")" = CONTAINER_RUNNING ]
	wait_state ctrd2_reader "$BEFORE"
	[ "$MEM" = OK ] && [ "$MD5" = "$MD5_BEFORE" ]
	if [ "$h" = runcr ]; then
		# The shim's checkpoint: leave running, CRIU's work dir is
		# containerd's ctrd-checkpoint dir (archived as is).
		argv_since "$MARK" | grep -E '^--root [^ ]+/runc-root/runcr/k8s.io --log [^ ]+ --log-format json checkpoint .*--leave-running' |
			grep -E -- '--work-path [^ ]+/ctrd-checkpoint '
		# runcr's manifest rides along in CRIU's image directory.
		tar -tf "$ARCHIVE" | grep -qx checkpoint/runcr-manifest.json
	else
		# The reference: runcr was never called.
		[ -z "$(argv_since "$MARK")" ]
		if tar -tf "$ARCHIVE" | grep -q runcr-manifest; then
			fail "runcr's manifest in runc's checkpoint"
		fi
	fi
}

# restore_new_pod VERSION HANDLER: checkpoint_running, remove the pod, then
# CreateContainer in a new pod with the archive as its image, start: the
# workload counts on from the checkpointed counter with the same memory.
restore_new_pod() {
	local v=$1 h=$2
	checkpoint_running "$v" "$h"
	crictl_ rmp -f "$POD_ID"
	[ "$status" -eq 0 ]
	local mark
	mark=$(argv_mark)
	ctrd2_run_pod "rs-$h" "$h"
	ctrd2_create_ctr "$POD_ID" "$POD_JSON" counter "$ARCHIVE"
	[ "$status" -eq 0 ]
	crictl_ start "$CID"
	[ "$status" -eq 0 ]
	assert_continues ctrd2_reader "$BEFORE" "$MD5_BEFORE"
	crictl_ inspect -o go-template --template '{{index .status.annotations "restored"}}' "$CID"
	[ "$output" = true ]
	if [ "$h" = runcr ]; then
		argv_since "$mark" | grep -E '^--root [^ ]+/runc-root/runcr/k8s.io --log [^ ]+ --log-format json restore .*--image-path [^ ]+/ctrd-restore/checkpoint'
	else
		[ -z "$(argv_since "$mark")" ]
	fi
}

@test "containerd 2.4.2, runcr: crictl checkpoint --export of a running pod container; it keeps running" {
	checkpoint_running 2.4.2 runcr
}

@test "containerd 2.4.2, runc (reference): crictl checkpoint --export of a running pod container; it keeps running" {
	checkpoint_running 2.4.2 runc
}

@test "containerd 2.3.7, runcr: crictl checkpoint --export of a running pod container; it keeps running" {
	checkpoint_running 2.3.7 runcr
}

@test "containerd 2.3.7, runc (reference): crictl checkpoint --export of a running pod container; it keeps running" {
	checkpoint_running 2.3.7 runc
}

# import_cri_archive HANDLER: containerd 2.4's CRI archive of the workload
# (made with HANDLER as the runtime) read by `runcr inspect` and restored by
# `runcr restore --import` into a fresh bundle beside the running original
# (whose pod's IPC and UTS namespaces spec.dump names): the copy counts on
# from the checkpointed counter, memory intact, its rootfs changes applied.
import_cri_archive() {
	local h=$1 root_mode before b
	checkpoint_running 2.4.2 "$h"
	check_runcr_reads_engine_archive "$ARCHIVE" containerd counter
	jq -e '.engine.rootfs_diff.paths | index("tmp/state") != null' <<<"$INSPECT_JSON" >/dev/null ||
		fail "inspect's rootfs diff lacks tmp/state"
	crictl_ exec -s "$CID" stat -c %a /
	root_mode=$output
	before=$(tar -xOf "$ARCHIVE" rootfs-diff.tar | tar -xzOf - tmp/state | sed 's/.*counter=\([0-9]*\).*/\1/')
	log "checkpointed at counter $before"
	NEW_ID=runcr-c2i-$h-$$
	b=$BATS_TEST_TMPDIR/bundle
	bundle_from_engine_archive "$ARCHIVE" "$b" "runcr-c2i-$$" "$root_mode"
	frun "$RUNCR" restore -d --import "$ARCHIVE" --bundle "$b" "$NEW_ID"
	ip netns del "runcr-c2i-$$" 2>/dev/null || true
	[ "$status" -eq 0 ] || fail "runcr restore --import of containerd's archive failed"
	assert_continues imported_reader "$before" "$MD5_BEFORE"
}

imported_reader() {
	"$RUNCR" exec "$NEW_ID" cat /tmp/state
}

@test "containerd 2.4.2 archive (runcr as the runtime): runcr inspect, and restore --import into a fresh bundle" {
	import_cri_archive runcr
}

@test "containerd 2.4.2 archive (runc as the runtime): runcr inspect, and restore --import into a fresh bundle" {
	import_cri_archive runc
}

@test "containerd 2.3.7, runcr: restore via CreateContainer into a new pod; workload continues" {
	restore_new_pod 2.3.7 runcr
}

@test "containerd 2.3.7, runc (reference): restore via CreateContainer into a new pod; workload continues" {
	restore_new_pod 2.3.7 runc
}

@test "containerd 2.4.2: restore via CreateContainer is gone (no config key; an archive is no image)" {
	requires_ctrd2 2.4.2
	if ctrd2_has_restore_via_create 2.4.2; then
		fail "containerd 2.4.2 has enable_experimental_restore_via_create"
	fi
	ctrd2_has_restore_via_create 2.3.7 || skip "containerd 2.3.7 not installed to compare"
	checkpoint_running 2.4.2 runcr
	crictl_ rmp -f "$POD_ID"
	local mark
	mark=$(argv_mark)
	ctrd2_run_pod rs-gone runcr
	ctrd2_create_ctr "$POD_ID" "$POD_JSON" counter "$ARCHIVE" || true
	[ "$status" -ne 0 ]
	[[ $output == *"failed to resolve image"* ]]
	# Refused before any runtime call for the container (the only create
	# is the new pod's sandbox).
	if argv_since "$mark" | grep -E ' (create|restore) ' | grep -vF "$POD_ID"; then
		fail "a runtime create/restore besides the sandbox's"
	fi
}
