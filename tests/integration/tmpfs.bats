#!/usr/bin/env bats
# What the application wrote to the container's tmpfs mounts (/dev/shm,
# /dev) survives a checkpoint and a restore: files, their permissions and
# owners, device nodes runc made and ones the application made. The
# downtime work (issue 14) must not trade any of it for speed.

# shellcheck disable=SC2153 # TOKEN, COUNTER, ... are set by helpers
load helpers

# Lets the container's root make device nodes and change owners.
allow_mknod_chown() {
	local c
	for c in bounding effective permitted; do
		update_config ".process.capabilities.$c += [\"CAP_MKNOD\", \"CAP_CHOWN\"]"
	done
}

# stat of PATH inside the container: type, mode, owner, device numbers.
ct_stat() {
	stat -c '%F %a %u:%g %t:%T %s' "/proc/$(container_pid "$CT")/root$1"
}

@test "tmpfs: a file written to /dev/shm survives checkpoint and restore" {
	# shellcheck disable=SC2016 # expanded by the container's shell
	use_counter_workload 'mkdir -m 0710 /dev/shm/dir &&
head -c 300000 /dev/urandom >/dev/shm/dir/data && chmod 0640 /dev/shm/dir/data &&
echo hello >/dev/shm/small && ln -s dir/data /dev/shm/link && '
	start_workload
	local token=$TOKEN pid sum before
	pid=$(container_pid "$CT")
	sum=$(md5sum <"/proc/$pid/root/dev/shm/dir/data")
	before="$(ct_stat /dev/shm/dir) / $(ct_stat /dev/shm/dir/data) / $(ct_stat /dev/shm/small)"

	runcr checkpoint --image-path ./image "$CT"
	[ "$status" -eq 0 ]
	expect_state "$CT" gone
	restore_detached "$CT" --image-path ./image
	read_state
	expect_progress "$CT" "$COUNTER" "$token"

	pid=$(container_pid "$CT")
	[ "$(md5sum <"/proc/$pid/root/dev/shm/dir/data")" = "$sum" ] || fail "/dev/shm/dir/data changed"
	[ "$(cat "/proc/$pid/root/dev/shm/small")" = hello ] || fail "/dev/shm/small changed"
	[ "$(readlink "/proc/$pid/root/dev/shm/link")" = dir/data ] || fail "/dev/shm/link changed"
	[ "$(ct_stat /dev/shm/dir) / $(ct_stat /dev/shm/dir/data) / $(ct_stat /dev/shm/small)" = "$before" ] ||
		fail "permissions changed: $before"
}

@test "tmpfs: /dev/shm written by a container left running is in its checkpoint" {
	use_counter_workload 'echo one >/dev/shm/note && '
	start_workload
	local token=$TOKEN pid
	pid=$(container_pid "$CT")
	echo two >"/proc/$pid/root/dev/shm/note"

	runcr checkpoint --leave-running --image-path ./image "$CT"
	[ "$status" -eq 0 ]
	expect_state "$CT" running
	# Written after the dump: the restore must bring back what the dump saw.
	echo three >"/proc/$pid/root/dev/shm/note"
	runcr kill "$CT" KILL
	wait_for 50 0.1 pid_gone "$pid"
	runcr delete "$CT"

	restore_detached "$CT" --image-path ./image
	read_state
	expect_progress "$CT" "$COUNTER" "$token"
	[ "$(cat "/proc/$(container_pid "$CT")/root/dev/shm/note")" = two ] || fail "/dev/shm/note is not what the dump saw"
}

@test "tmpfs: device nodes keep their permissions and owners" {
	allow_mknod_chown
	use_counter_workload 'chmod 0604 /dev/zero && chown 7:8 /dev/full && chmod 0600 /dev/random && '
	start_workload
	local token=$TOKEN node before after
	before=$(for node in /dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty; do ct_stat $node; done)
	grep -q '^character special file 604 0:0 1:5 ' <<<"$before" || fail "chmod of /dev/zero didn't happen: $before"

	runcr checkpoint --image-path ./image "$CT"
	[ "$status" -eq 0 ]
	restore_detached "$CT" --image-path ./image
	read_state
	expect_progress "$CT" "$COUNTER" "$token"
	after=$(for node in /dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty; do ct_stat $node; done)
	[ "$after" = "$before" ] || fail "device nodes changed: before
$before
after
$after"
}

@test "tmpfs: a /dev holding what runc did not put there is dumped in full" {
	allow_mknod_chown
	use_counter_workload 'mknod -m 0620 /dev/extra c 1 3 && chown 5:6 /dev/extra &&
mkfifo -m 0640 /dev/fifo && mkdir /dev/mine && echo data >/dev/mine/file && ln -s mine/file /dev/mylink && '
	start_workload
	local token=$TOKEN before after archive
	before="$(ct_stat /dev/extra) / $(ct_stat /dev/fifo) / $(ct_stat /dev/mine) / $(ct_stat /dev/mine/file)"

	runcr checkpoint --image-path ./image "$CT"
	[ "$status" -eq 0 ]
	# CRIU archived the /dev tmpfs, extra node and all.
	for archive in ./image/tmpfs-dev-*.tar.gz.img; do
		tar -tzf "$archive" | grep -qx './extra' && break
		archive=
	done
	[ -n "$archive" ] || fail "no tmpfs archive in ./image holds /dev/extra"

	restore_detached "$CT" --image-path ./image
	read_state
	expect_progress "$CT" "$COUNTER" "$token"
	after="$(ct_stat /dev/extra) / $(ct_stat /dev/fifo) / $(ct_stat /dev/mine) / $(ct_stat /dev/mine/file)"
	[ "$after" = "$before" ] || fail "/dev changed: before $before, after $after"
	[ "$(cat "/proc/$(container_pid "$CT")/root/dev/mine/file")" = data ] || fail "/dev/mine/file lost its data"
	[ "$(readlink "/proc/$(container_pid "$CT")/root/dev/mylink")" = mine/file ] || fail "/dev/mylink changed"
}
