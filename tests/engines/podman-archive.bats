#!/usr/bin/env bats
# Podman's checkpoint archives (podman container checkpoint --export) read
# and restored by runcr itself: runcr inspect ARCHIVE, and runcr restore
# --import ARCHIVE into a fresh bundle, outside Podman.

load helpers
load podman

setup_file() {
	requires_root
	requires_cmd podman conmon jq zstd ip
}

teardown_file() {
	engines_save_argv_log "podman-archive"
	podman_teardown
	engines_unmount_all
}

setup() {
	requires_root
	requires_cmd podman conmon jq zstd ip
	podman_setup json
	PODMAN_CTR=pma-$BATS_TEST_NUMBER
	NEW_ID=runcr-pma-$BATS_TEST_NUMBER-$$
	NETNS=runcr-pma-$BATS_TEST_NUMBER-$$
	MARK=$(argv_mark)
}

teardown() {
	log "--- runtime calls in this test:"
	argv_log_since "$MARK" >&2 || true
	"$RUNCR" kill "$NEW_ID" KILL >/dev/null 2>&1 || true
	sleep 0.3
	"$RUNCR" delete -f "$NEW_ID" >/dev/null 2>&1 || true
	ip netns del "$NETNS" 2>/dev/null || true
	podman_teardown
}

restored_reader() {
	"$RUNCR" exec "$NEW_ID" cat /tmp/state
}

# podman_archive_roundtrip [PODMAN_RUNTIME]: Podman runs the workload (with
# runcr, or the runtime given), the test changes the container's rootfs (a
# file written, one deleted), Podman exports a checkpoint; runcr inspects it
# and restores it into a new bundle, where the workload counts on with its
# memory intact and the rootfs changes are there.
podman_archive_roundtrip() {
	# The last --runtime counts: Podman runs the container with this one.
	[ -n "${1:-}" ] && PODMAN+=(--runtime "$1")
	podman_run_workload "$PODMAN_CTR"
	wait_state podman_reader 2
	pm exec "$PODMAN_CTR" sh -c 'echo from-podman >/etc/runcr-added && rm /etc/group && mkdir -p /opt/new && echo deep >/opt/new/file'
	[ "$status" -eq 0 ]
	pm exec "$PODMAN_CTR" stat -c %a /
	local root_mode=$output
	local archive=$BATS_TEST_TMPDIR/podman-ckpt.tar.zst
	pm container checkpoint --export "$archive" "$PODMAN_CTR"
	[ "$status" -eq 0 ]
	local before md5
	before=$(tar -I zstd -xOf "$archive" rootfs-diff.tar | tar -xOf - tmp/state | sed 's/.*counter=\([0-9]*\).*/\1/')
	md5=$MD5
	log "checkpointed at counter $before"

	check_runcr_reads_engine_archive "$archive" Podman "$PODMAN_CTR"
	jq -e '.engine.rootfs_diff.paths | index("etc/runcr-added") != null and index("opt/new/file") != null' <<<"$INSPECT_JSON" ||
		fail "inspect's rootfs diff lacks the written files"
	jq -e '.engine.deleted_files == ["etc/group"]' <<<"$INSPECT_JSON" || fail "inspect does not list the deleted file"
	jq -e '.engine.image == "'"$IMAGE_REF"'"' <<<"$INSPECT_JSON" || fail "inspect names another image"

	local b=$BATS_TEST_TMPDIR/bundle
	bundle_from_engine_archive "$archive" "$b" "$NETNS" "$root_mode"
	[ -f "$b/rootfs/etc/group" ]
	frun "$RUNCR" restore -d --import "$archive" --bundle "$b" "$NEW_ID"
	[ "$status" -eq 0 ] || fail "runcr restore --import of Podman's archive failed"
	assert_continues restored_reader "$before" "$md5"
	[ "$(cat "$b/rootfs/etc/runcr-added")" = from-podman ]
	[ "$(cat "$b/rootfs/opt/new/file")" = deep ]
	[ ! -e "$b/rootfs/etc/group" ] || fail "deleted.files was not applied"
	run "$RUNCR" exec "$NEW_ID" cat /etc/runcr-added
	[ "$output" = from-podman ]
	run "$RUNCR" exec "$NEW_ID" ls /etc/group
	[ "$status" -ne 0 ]
}

@test "podman archive (runcr as Podman's runtime): runcr inspect and restore --import into a fresh bundle" {
	podman_archive_roundtrip
}

@test "podman archive (runc as Podman's runtime): runcr inspect and restore --import into a fresh bundle" {
	podman_archive_roundtrip /usr/local/sbin/runc
}

@test "podman archive: a bundle without config.json is refused, naming spec.dump; nothing is changed" {
	podman_run_workload "$PODMAN_CTR"
	wait_state podman_reader 1
	pm exec "$PODMAN_CTR" sh -c 'echo x >/etc/runcr-added'
	local archive=$BATS_TEST_TMPDIR/podman-ckpt.tar
	pm container checkpoint --compress none --export "$archive" "$PODMAN_CTR"
	[ "$status" -eq 0 ]
	local b=$BATS_TEST_TMPDIR/bundle
	mkdir -p "$b"
	cp -a "$ROOTFS" "$b/rootfs"
	mkdir "$BATS_TEST_TMPDIR/tmp"
	TMPDIR=$BATS_TEST_TMPDIR/tmp frun "$RUNCR" restore -d --import "$archive" --bundle "$b" "$NEW_ID"
	[ "$status" -ne 0 ]
	[[ "$output" == *config.json* && "$output" == *spec.dump* ]] || fail "the error does not explain: $output"
	[ ! -e "$b/rootfs/etc/runcr-added" ] || fail "the rootfs was changed"
	[ -z "$(ls -A "$BATS_TEST_TMPDIR/tmp")" ] || fail "left in TMPDIR: $(ls -A "$BATS_TEST_TMPDIR/tmp")"
	[ ! -e "/run/runc/$NEW_ID" ] || fail "a container $NEW_ID was left"
}
