#!/usr/bin/env bats
# CVE-2026-119101 (runc), CVE-2026-119614 (CRIU): a container or an image
# that moves a bind mount behind a symlink must not make CRIU name the
# wrong mount, and a read-only bind mount must never be writable while a
# restore prepares the rootfs. Each refusal names the mount and leaves the
# container (or the checkpoint) as it was.

# shellcheck disable=SC2153 # TOKEN, COUNTER, ... are set by helpers
load helpers

# A counter workload with a bind mount of $ROOT/bind at /a/data.
start_with_bind_mount() {
	mkdir -p "$ROOT/bind" "$BUNDLE/rootfs/a/data"
	echo host-data >"$ROOT/bind/file"
	update_config '.mounts += [{type: "bind", source: "'"$ROOT/bind"'", destination: "/a/data", options: ["bind"]}]'
	use_counter_workload
	start_workload
}

# What the container (or an image) can do to its rootfs: rename the mount's
# parent and put a symlink where the mount was. A mount point can't be
# renamed, its parent can, from inside the container too.
redirect_mount() {
	mv "$BUNDLE/rootfs/a" "$BUNDLE/rootfs/b"
	mkdir "$BUNDLE/rootfs/a"
	ln -sfn "$1" "$BUNDLE/rootfs/a/data"
}

undo_redirect() {
	rm "$BUNDLE/rootfs/a/data"
	rmdir "$BUNDLE/rootfs/a"
	mv "$BUNDLE/rootfs/b" "$BUNDLE/rootfs/a"
}

@test "checkpoint refuses a bind mount moved behind a symlink (]:, /, another directory); the container runs on" {
	start_with_bind_mount
	local token=$TOKEN target
	mv "$BUNDLE/rootfs/a" "$BUNDLE/rootfs/b"
	mkdir "$BUNDLE/rootfs/a"
	for target in "/b/data]:/name" "/" "/etc"; do
		ln -sfn "$target" "$BUNDLE/rootfs/a/data"
		runcr checkpoint --image-path "$ROOT/image" "$CT"
		[ "$status" -ne 0 ]
		[[ $output == *"invalid external mount destination"* ]] || fail "no clear refusal for a symlink to $target"
		[[ $output == *"/a/data"* ]] || fail "the error does not name the mount"
		# Untouched: running, not frozen, the same process carrying on.
		expect_state "$CT" running
		read_state
		expect_progress "$CT" "$COUNTER" "$token"
		[ ! -e "$ROOT/image/runcr-manifest.json" ] || fail "a refused checkpoint left a manifest"
	done
	rm "$BUNDLE/rootfs/a/data"
	rmdir "$BUNDLE/rootfs/a"
	mv "$BUNDLE/rootfs/b" "$BUNDLE/rootfs/a"

	# Put back, the same container checkpoints and restores as usual, its
	# mount still the host directory.
	runcr checkpoint --image-path "$ROOT/image" "$CT"
	[ "$status" -eq 0 ]
	expect_state "$CT" gone
	read_state_file
	restore_detached "$CT" --image-path "$ROOT/image"
	expect_progress "$CT" "$COUNTER" "$token"
	runcr exec "$CT" cat /a/data/file
	[ "$output" = host-data ]
}

@test "restore refuses a rootfs whose bind mount destination resolves to ]: or /; the images stay restorable" {
	start_with_bind_mount
	local token=$TOKEN target at
	runcr checkpoint --image-path "$ROOT/image" "$CT"
	[ "$status" -eq 0 ]
	read_state_file
	at=$COUNTER
	for target in "/b/data]:/name" "/"; do
		redirect_mount "$target"
		runcr_with_pipes restore -d --image-path "$ROOT/image" "$CT" && fail "restore through a symlink to $target succeeded"
		grep -q 'invalid external mount destination' "$CT_OUT" || fail "no clear refusal for a symlink to $target"
		expect_state "$CT" gone
		# Refused before CRIU ran: it wrote no restore log.
		[ ! -e "$ROOT/image/restore.log" ] || fail "CRIU ran"
		undo_redirect
	done
	restore_detached "$CT" --image-path "$ROOT/image"
	expect_progress "$CT" "$at" "$token"
}

@test "restore --import refuses, before CRIU runs and leaving nothing behind, a bundle whose mount resolves to ]:" {
	start_with_bind_mount
	local token=$TOKEN before after
	runcr checkpoint --export "$ROOT/ct.tar.zst" "$CT"
	[ "$status" -eq 0 ]
	read_state_file
	redirect_mount "/b/data]:/name"
	before=$(find /tmp -maxdepth 1 -name 'runcr-import-*' | wc -l)
	runcr restore -d --import "$ROOT/ct.tar.zst" "$CT"
	[ "$status" -ne 0 ]
	[[ $output == *"invalid external mount destination"* ]] || fail "no clear refusal"
	expect_state "$CT" gone
	after=$(find /tmp -maxdepth 1 -name 'runcr-import-*' | wc -l)
	[ "$after" -le "$before" ] || fail "the refused import left its temporary images behind"
	undo_redirect
	restore_detached "$CT" --import "$ROOT/ct.tar.zst"
	expect_progress "$CT" "$COUNTER" "$token"
}

@test "restore never writes through a read-only bind mount: no mountpoint created in its source, read-only inside" {
	mkdir -p "$ROOT/ro"
	echo keep >"$ROOT/ro/file"
	update_config '.mounts += [{type: "bind", source: "'"$ROOT/ro"'", destination: "/ro", options: ["bind", "ro"]}]'
	use_counter_workload
	start_workload
	local token=$TOKEN listing
	listing=$(ls -lA --time-style=full-iso "$ROOT/ro"; stat -c %y "$ROOT/ro")
	runcr checkpoint --image-path "$ROOT/image" "$CT"
	[ "$status" -eq 0 ]
	read_state_file
	# The restore's config has a mount below the read-only one whose
	# mountpoint doesn't exist: preparing it through a writable bind of
	# the source would create it in the host directory (runc < 1.4.4).
	update_config '.mounts += [{type: "tmpfs", source: "tmpfs", destination: "/ro/newdir", options: ["nosuid"]}]'
	runcr_with_pipes restore -d --image-path "$ROOT/image" "$CT" || true
	[ ! -e "$ROOT/ro/newdir" ] || fail "restore created a mountpoint in the read-only bind mount's source"
	[ "$(ls -lA --time-style=full-iso "$ROOT/ro"; stat -c %y "$ROOT/ro")" = "$listing" ] || fail "the read-only source changed"
	runcr delete -f "$CT" >/dev/null 2>&1 || true

	# The config as it was: restored, the mount is read-only inside.
	update_config 'del(.mounts[] | select(.destination == "/ro/newdir"))'
	restore_detached "$CT" --image-path "$ROOT/image"
	expect_progress "$CT" "$COUNTER" "$token"
	runcr exec "$CT" sh -c 'echo x >/ro/file'
	[ "$status" -ne 0 ]
	[ "$(cat "$ROOT/ro/file")" = keep ]
	[ "$(ls -lA --time-style=full-iso "$ROOT/ro"; stat -c %y "$ROOT/ro")" = "$listing" ]
}
