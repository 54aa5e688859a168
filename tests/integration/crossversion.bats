#!/usr/bin/env bats
# runcr with either runc line passed through: the v1.4 line (runcr's own
# libcontainer, /usr/local/sbin/runc) and the current release v1.5.3
# (tests/setup/install-deps.sh puts it in /usr/local/libexec/runcr). A
# container created by one runc is checkpointed and restored through runcr
# and managed by that runc afterwards, and the other way round; images cross
# between runcr and runc v1.5.3; the masked directories of a runc container
# (one shared read-only tmpfs bind-mounted over each) survive runcr's
# checkpoint/restore; and so does runc v1.5.3's rslave rootfs propagation.
#
#   RUNC_V14  the v1.4 runc (default: $RUNC, runc on PATH)
#   RUNC_V15  the v1.5 runc (default /usr/local/libexec/runcr/runc-v1.5.3)

# shellcheck disable=SC2153 # TOKEN, COUNTER, ... are set by helpers
load helpers

setup() {
	setup_common
	setup_bundle
	: "${RUNC_V14:=$RUNC}" "${RUNC_V15:=/usr/local/libexec/runcr/runc-v1.5.3}"
	expect_runc_version "$RUNC_V14" 1.4
	expect_runc_version "$RUNC_V15" 1.5
	# runc's state of a container is in $STATE whichever runc wrote it;
	# teardown cleans up through runcr and $RUNC.
}

# expect_runc_version BIN MAJOR.MINOR: BIN is a runc of that line.
expect_runc_version() {
	local v
	[ -x "$1" ] || fail "$1 is missing: run make deps (tests/setup/install-deps.sh)"
	v=$("$1" --version 2>/dev/null | sed -n 's/^runc version //p')
	[[ $v == "$2".* ]] || fail "$1 is runc ${v:-?}, want $2.x"
}

# use_runcs CREATOR PASSTHROUGH: runc (and runc_with_pipes, __runc) is
# CREATOR from now on, and runcr passes its other commands to PASSTHROUGH.
use_runcs() {
	RUNC=$1
	export RUNCR_RUNC=$2
	log "runc: $RUNC ($("$RUNC" --version | head -1)); runcr passes through to $RUNCR_RUNC ($("$RUNCR_RUNC" --version | head -1))"
}

# runc_manages ID: the runc in $RUNC sees the running container ID with the
# same pid as runcr, execs in it, kills and deletes it.
runc_manages() {
	local id=$1 pid
	pid=$(container_pid "$id")
	runc state "$id"
	[ "$status" -eq 0 ] || fail "$RUNC state $id failed"
	[ "$(jq -r .status <<<"$output")" = running ] || fail "$RUNC sees $id $(jq -r .status <<<"$output")"
	[ "$(jq -r .pid <<<"$output")" = "$pid" ] || fail "$RUNC sees pid $(jq -r .pid <<<"$output"), runcr $pid"
	runc exec "$id" cat /tmp/state
	[ "$status" -eq 0 ] || fail "$RUNC exec in $id failed"
	[[ $output =~ ^[0-9]+\ [0-9a-f]+\ OK$ ]] || fail "unexpected /tmp/state: $output"
	runc kill "$id" KILL
	[ "$status" -eq 0 ] || fail "$RUNC kill $id failed"
	wait_for 50 0.1 container_stopped "$id" || fail "$id did not stop"
	pid_gone "$pid" || fail "process $pid of $id is still there"
	runc delete "$id"
	[ "$status" -eq 0 ] || fail "$RUNC delete $id failed"
	runc state "$id"
	[ "$status" -ne 0 ] || fail "$id still exists for $RUNC after delete"
	expect_state "$id" gone
}

# runcr_manages ID: the same through runcr (its pass-through).
runcr_manages() {
	local id=$1 pid
	pid=$(container_pid "$id")
	runcr exec "$id" cat /tmp/state
	[ "$status" -eq 0 ] || fail "runcr exec in $id failed"
	runcr kill "$id" KILL
	[ "$status" -eq 0 ] || fail "runcr kill $id failed"
	wait_for 50 0.1 container_stopped "$id" || fail "$id did not stop"
	pid_gone "$pid" || fail "process $pid of $id is still there"
	runcr delete "$id"
	[ "$status" -eq 0 ] || fail "runcr delete $id failed"
	expect_state "$id" gone
	runc state "$id"
	[ "$status" -ne 0 ] || fail "$id still exists for $RUNC after runcr delete"
}

# created_by_runc: `runc run -d` of the memory workload; sets TOKEN.
created_by_runc() {
	use_memory_workload
	runc_with_pipes run -d "$CT" || fail "$RUNC run -d failed"
	wait_for 50 0.1 __runc exec "$CT" test -s /tmp/state || fail "the workload did not start"
	read_state
	expect_progress "$CT" "$COUNTER" "$TOKEN"
}

# runcr_checkpoint_restore: runcr checkpoint, then runcr restore -d of $CT;
# the workload carries on where it stopped, memory intact.
runcr_checkpoint_restore() {
	local token=$TOKEN
	runcr checkpoint --image-path ./image "$CT"
	[ "$status" -eq 0 ] || fail "runcr checkpoint failed"
	expect_image ./image
	expect_state "$CT" gone
	read_state_file
	restore_detached "$CT" --image-path ./image
	expect_progress "$CT" "$COUNTER" "$token"
}

# runc_checkpoint_restore: the same with the runc in $RUNC.
runc_checkpoint_restore() {
	local token=$TOKEN
	runc checkpoint --image-path ./image "$CT"
	[ "$status" -eq 0 ] || fail "$RUNC checkpoint failed"
	expect_image ./image
	expect_state "$CT" gone
	read_state_file
	runc_with_pipes restore -d --image-path ./image "$CT" || fail "$RUNC restore -d failed"
	expect_progress "$CT" "$COUNTER" "$token"
}

@test "runc v1.5.3 runs it, runcr checkpoints and restores it (pass-through v1.5.3), runc v1.5.3 manages it" {
	use_runcs "$RUNC_V15" "$RUNC_V15"
	created_by_runc
	runcr_checkpoint_restore
	runc_manages "$CT"
}

@test "runc v1.4 runs it, runcr checkpoints and restores it (pass-through v1.4), runc v1.4 manages it" {
	use_runcs "$RUNC_V14" "$RUNC_V14"
	created_by_runc
	runcr_checkpoint_restore
	runc_manages "$CT"
}

@test "runc v1.5.3 runs it, runcr with pass-through v1.4 checkpoints and restores it, runc v1.5.3 manages it" {
	use_runcs "$RUNC_V15" "$RUNC_V14"
	created_by_runc
	runcr_checkpoint_restore
	# And twice, the second time from the state runcr's restore wrote.
	read_state
	runcr_checkpoint_restore
	runc_manages "$CT"
}

@test "runcr runs it (pass-through v1.5.3), runc v1.5.3 checkpoints and restores it, runcr manages it" {
	use_runcs "$RUNC_V15" "$RUNC_V15"
	use_memory_workload
	start_workload
	runc_checkpoint_restore
	runcr_manages "$CT"
}

@test "runcr runs it (pass-through v1.4), runc v1.4 checkpoints and restores it, runcr manages it" {
	use_runcs "$RUNC_V14" "$RUNC_V14"
	use_memory_workload
	start_workload
	runc_checkpoint_restore
	runcr_manages "$CT"
}

@test "runcr restores what runc v1.5.3 restored, runc v1.5.3 restores what runcr dumped" {
	# runcr on pass-through v1.4, runc v1.5.3 on the other side: the two
	# libcontainers read each other's state.json and CRIU images.
	use_runcs "$RUNC_V15" "$RUNC_V14"
	created_by_runc
	runc_checkpoint_restore
	read_state
	runcr_checkpoint_restore
	read_state
	runcr checkpoint --image-path ./image2 "$CT"
	[ "$status" -eq 0 ] || fail "runcr checkpoint failed"
	read_state_file
	local token=$TOKEN
	runc_with_pipes restore -d --image-path ./image2 "$CT" || fail "$RUNC restore -d failed"
	expect_progress "$CT" "$COUNTER" "$token"
	runc_manages "$CT"
}

# masked DIR ID: DIR in container ID is an empty read-only directory.
expect_masked_dir() {
	local dir=$1 id=$2
	runcr exec "$id" ls -A "$dir"
	[ "$status" -eq 0 ] || fail "ls $dir in $id failed"
	[ -z "$output" ] || fail "masked $dir shows: $output"
	runcr exec "$id" cat "$dir/file"
	[ "$status" -ne 0 ] || fail "masked $dir/file is readable: $output"
	runcr exec "$id" touch "$dir/new"
	[ "$status" -ne 0 ] || fail "masked $dir is writable"
	[[ $output == *"Read-only file system"* ]] || fail "touch $dir/new: $output"
}

# mask_devs ID: the device numbers of /secret1 and /secret2 in container ID.
mask_devs() {
	runcr exec "$1" stat -c %d /secret1 /secret2
	[ "$status" -eq 0 ] || fail "stat in $1 failed"
	echo "$output" | tr '\n' ' '
}

# masked_dirs_survive RUNC: a container run by RUNC with two masked
# directories; runc (>= 1.4.3 and 1.5.0) masks every directory with a bind of
# one shared read-only tmpfs. runcr (pass-through RUNC) checkpoints and
# restores it twice; RUNC manages it after.
masked_dirs_survive() {
	use_runcs "$1" "$1"
	local d devs a b
	for d in secret1 secret2; do
		mkdir "$BUNDLE/rootfs/$d"
		echo "hidden $d" >"$BUNDLE/rootfs/$d/file"
	done
	update_config '.linux.maskedPaths += ["/secret1", "/secret2"]'
	created_by_runc
	for d in /secret1 /secret2; do expect_masked_dir "$d" "$CT"; done
	devs=$(mask_devs "$CT")
	read -r a b <<<"$devs"
	log "masked dirs before checkpoint: devices $devs"
	[ "$a" = "$b" ] || fail "runc $RUNC masks the directories with distinct mounts ($devs)"

	runcr_checkpoint_restore
	for d in /secret1 /secret2; do expect_masked_dir "$d" "$CT"; done
	devs=$(mask_devs "$CT")
	read -r a b <<<"$devs"
	log "masked dirs after restore: devices $devs"
	[ "$a" = "$b" ] || fail "after restore the masks are distinct mounts ($devs)"
	# The host's copies were never touched.
	[ "$(cat "$BUNDLE/rootfs/secret1/file")" = "hidden secret1" ]

	# Once more, then runc takes over.
	read_state
	runcr_checkpoint_restore
	for d in /secret1 /secret2; do expect_masked_dir "$d" "$CT"; done
	runc_manages "$CT"
}

@test "masked directories of a runc v1.5.3 container (one shared read-only tmpfs) survive runcr checkpoint/restore" {
	masked_dirs_survive "$RUNC_V15"
}

@test "masked directories of a runc v1.4 container (one shared read-only tmpfs) survive runcr checkpoint/restore" {
	masked_dirs_survive "$RUNC_V14"
}

# host_mount_seen ID NAME: a tmpfs the host mounts on rootfs/NAME, holding a
# file, shows inside container ID (propagation from the host).
host_mount_seen() {
	local id=$1 name=$2
	[ -d "$BUNDLE/rootfs/$name" ] || mkdir "$BUNDLE/rootfs/$name"
	mount -t tmpfs tmpfs "$BUNDLE/rootfs/$name" || fail "mount on $name failed"
	echo "from the host $name" >"$BUNDLE/rootfs/$name/file"
	runcr exec "$id" cat "/$name/file"
	[ "$status" -eq 0 ] && [ "$output" = "from the host $name" ]
}

# rslave_on_shared_bundle: the bundle on a shared mount of its own (this
# host's / is private), the container run by runc v1.5.3 with
# rootfsPropagation rslave. runc >= 1.5.2 keeps the rootfs parent a slave of
# that mount (runc 1.4 makes it private), so host mounts under the rootfs
# show inside the container; checks that with rootfs/probe1.
rslave_on_shared_bundle() {
	use_runcs "$RUNC_V15" "$RUNC_V15"
	mount --bind "$BUNDLE" "$BUNDLE" && mount --make-shared "$BUNDLE" || fail "can't make $BUNDLE a shared mount"
	cd "$BUNDLE" || fail "cd $BUNDLE"
	update_config '.linux.rootfsPropagation = "rslave"'
	created_by_runc
	host_mount_seen "$CT" probe1 || fail "runc $RUNC does not propagate host mounts into an rslave rootfs"
	runcr exec "$CT" sh -c 'head -1 /proc/self/mountinfo'
	[[ $output == *" master:"* ]] || fail "the container's / is not a slave mount: $output"
}

@test "rslave rootfs of a runc v1.5.3 container still receives host mounts after runcr checkpoint/restore" {
	rslave_on_shared_bundle
	# The unmount propagates too; with no slave submount left, CRIU can
	# dump it (see the next test).
	umount "$BUNDLE/rootfs/probe1"
	wait_for 20 0.1 __runcr exec "$CT" test ! -e /probe1/file || fail "the host's unmount did not propagate"

	runcr_checkpoint_restore
	runcr exec "$CT" sh -c 'head -1 /proc/self/mountinfo'
	log "container's / after restore: $output"
	[[ $output == *" master:"* ]] || fail "after restore the container's / is not a slave mount: $output"
	host_mount_seen "$CT" probe2 || fail "after restore the host's mounts no longer show in the container"
	umount "$BUNDLE/rootfs/probe2"
	runc_manages "$CT"
}

@test "a host mount propagated into a runc v1.5.3 rslave rootfs: runcr, like runc v1.5.3, refuses to checkpoint, says why, the container carries on" {
	rslave_on_shared_bundle
	read_state
	local token=$TOKEN
	# CRIU can't dump a slave mount whose master is outside the container
	# ("has unreachable sharing. Try --enable-external-masters"), and
	# neither runc nor runcr passes that option.
	runc checkpoint --image-path ./image-runc "$CT"
	[ "$status" -ne 0 ] || fail "runc $RUNC checkpointed it: the limit is gone, update this test"
	expect_state "$CT" running
	runcr checkpoint --image-path ./image "$CT"
	[ "$status" -ne 0 ] || fail "runcr checkpointed it"
	[[ $output == *"has unreachable sharing"* ]] || fail "CRIU's reason is not shown: $output"
	[[ $output == *"hint: a mount in the container is a slave of a mount outside it"* ]] || fail "no hint: $output"
	expect_state "$CT" running
	expect_progress "$CT" "$COUNTER" "$token"
	runcr exec "$CT" cat /probe1/file
	[ "$output" = "from the host probe1" ] || fail "the propagated mount is gone: $output"
	umount "$BUNDLE/rootfs/probe1"
	runc_manages "$CT"
}
