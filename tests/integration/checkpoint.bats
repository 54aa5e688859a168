#!/usr/bin/env bats
# runcr checkpoint: what each option does to the container, its images and
# the host, checked by restoring and watching the workload carry on.

# shellcheck disable=SC2153 # TOKEN, COUNTER, ... are set by helpers
load helpers

@test "checkpoint stops and removes the container; restore carries on with its memory intact" {
	use_memory_workload
	start_workload
	local token=$TOKEN pid cg round at
	for round in 1 2; do
		pid=$(container_pid "$CT")
		cg=$(cgroup_dir "$pid")
		[ -d "$cg" ]

		runcr checkpoint --image-path "./image$round" "$CT"
		[ "$status" -eq 0 ]
		# Without --leave-running nothing of the container is left.
		expect_state "$CT" gone
		wait_for 50 0.1 pid_gone "$pid"
		[ ! -d "$cg" ]
		expect_image "./image$round"
		read_state_file
		at=$COUNTER
		sleep 0.5
		read_state_file
		[ "$COUNTER" -eq "$at" ]

		restore_detached "$CT" --image-path "./image$round"
		expect_progress "$CT" "$at" "$token"
	done
}

@test "checkpoint --leave-running: the container keeps running and can be checkpointed again" {
	use_memory_workload
	start_workload
	local token=$TOKEN pid
	pid=$(container_pid "$CT")

	runcr checkpoint --leave-running --image-path ./image1 "$CT"
	[ "$status" -eq 0 ]
	expect_state "$CT" running
	[ "$(container_pid "$CT")" = "$pid" ]
	expect_image ./image1
	read_state
	expect_progress "$CT" "$COUNTER" "$token"

	# Again, paused this time: a container left running goes on changing
	# its files (the workload renames the file it writes), and CRIU can
	# only restore files as the image saw them. Paused, nothing changes
	# between this dump and the restore below.
	runcr pause "$CT"
	[ "$status" -eq 0 ]
	runcr checkpoint --leave-running --image-path ./image2 "$CT"
	[ "$status" -eq 0 ]
	expect_state "$CT" paused
	[ "$(container_pid "$CT")" = "$pid" ]
	expect_image ./image2

	# The second image holds the same process: kill it and bring it back.
	runcr delete -f "$CT"
	[ "$status" -eq 0 ]
	expect_state "$CT" gone
	restore_detached_any "$CT" --image-path ./image2
	expect_progress "$CT" "$COUNTER" "$token"
}

@test "checkpoint of a busy container: runcr freezes it for CRIU, which seizes it at once, and --leave-running thaws it" {
	requires runcr
	# Busy on a CPU, the container often isn't frozen the moment CRIU asks,
	# and CRIU then sleeps 100 ms before asking again.
	use_counter_workload 'while :; do :; done & '
	start_workload
	local token=$TOKEN i first
	for i in 1 2 3 4 5; do
		runcr checkpoint --leave-running --image-path "./image$i" "$CT"
		[ "$status" -eq 0 ]
		# CRIU found it frozen already and never waited for the freezer.
		first=$(grep -m1 -o 'freezer.state=[A-Z]*' "./image$i/dump.log")
		[ "$first" = freezer.state=FROZEN ] || fail "CRIU found the container ${first#*=}, not frozen by runcr"
		! grep -q 'freezing processes: [0-9]* attempts done' "./image$i/dump.log" || fail "CRIU waited for the freezer"
		# Running and thawed again, and carrying on.
		expect_state "$CT" running
		read_state
		expect_progress "$CT" "$COUNTER" "$token"
	done
}

@test "checkpoint/restore --work-path: dump.log and restore.log land there, not in the image" {
	use_counter_workload
	start_workload
	local token=$TOKEN

	runcr checkpoint --work-path ./work-dump --image-path ./image "$CT"
	[ "$status" -eq 0 ]
	grep -q 'Dumping finished successfully' ./work-dump/dump.log
	[ ! -e ./image/dump.log ]
	expect_image ./image
	read_state_file

	# A work path that is a link of the caller's own in a private
	# directory (containerd's bundle/work -> its state dir) is followed.
	mkdir -m 0711 ./state-work
	ln -s "$PWD/state-work" ./work-restore
	restore_detached "$CT" --work-path ./work-restore --image-path ./image
	grep -q 'Restore finished successfully' ./state-work/restore.log
	[ ! -e ./image/restore.log ]
	expect_progress "$CT" "$COUNTER" "$token"
}

@test "checkpoint/restore without --image-path use ./checkpoint in the working directory" {
	use_counter_workload
	start_workload
	local token=$TOKEN
	mkdir "$ROOT/elsewhere"
	cd "$ROOT/elsewhere"

	runcr checkpoint "$CT"
	[ "$status" -eq 0 ]
	expect_image "$ROOT/elsewhere/checkpoint"
	[ ! -e "$BUNDLE/checkpoint" ]
	read_state_file

	restore_detached "$CT" --bundle "$BUNDLE"
	expect_progress "$CT" "$COUNTER" "$token"
}

@test "checkpoint --parent-path: absolute and missing parents are refused; the container keeps running" {
	use_counter_workload
	start_workload
	local token=$TOKEN
	mkdir "$ROOT/parent"

	# Absolute is refused even when the directory exists.
	runcr checkpoint --parent-path "$ROOT/parent" --image-path ./image "$CT"
	[ "$status" -ne 0 ]
	[[ "$output" == *parent-path* ]]

	runcr checkpoint --parent-path ../missing --image-path ./image "$CT"
	[ "$status" -ne 0 ]
	[[ "$output" == *parent-path* ]]

	[ ! -e ./image/inventory.img ]
	expect_state "$CT" running
	read_state
	expect_progress "$CT" "$COUNTER" "$token"
}

@test "checkpoint --pre-dump, then a dump with a relative --parent-path, restores" {
	requires criu_feature mem_dirty_track
	use_memory_workload
	start_workload
	local token=$TOKEN

	runcr checkpoint --pre-dump --image-path ./parent "$CT"
	[ "$status" -eq 0 ]
	# A pre-dump copies memory only and leaves the container running.
	expect_state "$CT" running
	ls ./parent/pages-*.img

	runcr checkpoint --parent-path ../parent --image-path ./image "$CT"
	[ "$status" -eq 0 ]
	[ "$(readlink ./image/parent)" = ../parent ]
	expect_state "$CT" gone
	read_state_file

	restore_detached "$CT" --image-path ./image
	expect_progress "$CT" "$COUNTER" "$token"
}

# runcr only: runc lets CRIU fail (after freezing) with a message that
# doesn't name the missing kernel feature.
@test "runcr refuses --pre-dump and --parent-path without soft-dirty tracking, naming mem_dirty_track" {
	requires runcr
	if criu check --feature mem_dirty_track >/dev/null 2>&1; then
		skip "this host has mem_dirty_track; the pre-dump test covers it"
	fi
	use_counter_workload
	start_workload
	local token=$TOKEN

	runcr checkpoint --pre-dump --image-path ./parent "$CT"
	[ "$status" -ne 0 ]
	[[ "$output" == *mem_dirty_track* ]]
	[ ! -e ./parent/inventory.img ]

	mkdir -p ./parent
	runcr checkpoint --parent-path ../parent --image-path ./image "$CT"
	[ "$status" -ne 0 ]
	[[ "$output" == *mem_dirty_track* ]]
	[ ! -e ./image/inventory.img ]

	expect_state "$CT" running
	read_state
	expect_progress "$CT" "$COUNTER" "$token"
}

@test "checkpoint/restore --manage-cgroups-mode ignore: restored under a new id, in the new id's cgroup" {
	use_memory_workload
	start_workload
	local token=$TOKEN old_cg new=$CT-new pid
	old_cg=$(cgroup_dir "$(container_pid "$CT")")
	[ -d "$old_cg" ]

	runcr checkpoint --manage-cgroups-mode ignore --image-path ./image "$CT"
	[ "$status" -eq 0 ]
	[ ! -d "$old_cg" ]
	read_state_file

	restore_detached "$new" --manage-cgroups-mode ignore --pid-file ./new.pid --image-path ./image
	pid=$(cat ./new.pid)
	log "$(cat "/proc/$pid/cgroup")"
	grep -q "/$new\$" "/proc/$pid/cgroup"
	run ! grep -q "/$CT\$" "/proc/$pid/cgroup"
	[ "$(basename "$(cgroup_dir "$pid")")" = "$new" ]
	grep -qx "$pid" "$(cgroup_dir "$pid")/cgroup.procs"
	[ ! -d "$old_cg" ]
	expect_state "$CT" gone
	expect_progress "$new" "$COUNTER" "$token"
}

@test "a checkpoint records the container thawed, though runcr froze it for CRIU: restored with --manage-cgroups-mode full it runs" {
	requires runcr
	use_counter_workload
	start_workload
	local token=$TOKEN
	runcr checkpoint --image-path ./image "$CT"
	[ "$status" -eq 0 ]
	read_state_file
	# full makes CRIU apply the cgroup properties it recorded, the freezer
	# state included, to the cgroups libcontainer made for the restore. A
	# FROZEN one would freeze the restore itself, CRIU included: a hang.
	local RUNCR_TEST_TIMEOUT=30
	if ! runcr_with_pipes restore -d --manage-cgroups-mode full --image-path ./image "$CT"; then
		local f=/sys/fs/cgroup/freezer/$CT/freezer.state
		[ -e "$f" ] && echo THAWED >"$f"
		fail "the restore with --manage-cgroups-mode full failed or hung"
	fi
	expect_state "$CT" running
	expect_progress "$CT" "$COUNTER" "$token"
}

@test "restore --manage-cgroups-mode full of a container checkpointed paused is refused (CRIU would hang); the default mode restores it" {
	requires runcr
	use_counter_workload
	start_workload
	local token=$TOKEN
	runcr pause "$CT"
	[ "$status" -eq 0 ]
	runcr checkpoint --image-path ./image "$CT"
	[ "$status" -eq 0 ]
	read_state_file
	# shellcheck disable=SC2034 # read by runcr_with_pipes
	local RUNCR_TEST_TIMEOUT=30
	runcr_with_pipes restore -d --manage-cgroups-mode full --image-path ./image "$CT" && fail "restore with full mode was not refused"
	grep -q -- '--manage-cgroups-mode full: the images in .* record the container frozen' "$CT_OUT" || fail "unclear refusal: $(tail -3 "$CT_OUT")"
	expect_state "$CT" gone
	restore_detached_any "$CT" --image-path ./image
	expect_progress "$CT" "$COUNTER" "$token"
}

@test "checkpoint/restore --manage-cgroups-mode with an unknown mode are refused" {
	use_counter_workload
	start_workload
	local token=$TOKEN

	runcr checkpoint --manage-cgroups-mode bogus --image-path ./image "$CT"
	[ "$status" -ne 0 ]
	[[ "$output" == *manage-cgroups-mode* ]]
	[ ! -e ./image/inventory.img ]
	expect_state "$CT" running

	runcr checkpoint --image-path ./image "$CT"
	[ "$status" -eq 0 ]
	read_state_file
	runcr restore -d --manage-cgroups-mode bogus --image-path ./image "$CT"
	[ "$status" -ne 0 ]
	[[ "$output" == *manage-cgroups-mode* ]]
	expect_state "$CT" gone

	# The image is untouched by the refusal.
	restore_detached "$CT" --image-path ./image
	expect_progress "$CT" "$COUNTER" "$token"
}

@test "restore --auto-dedup punches the restored pages out of the image; without it the image stays" {
	use_memory_workload
	start_workload
	local token=$TOKEN before plain after

	runcr checkpoint --image-path ./image "$CT"
	[ "$status" -eq 0 ]
	cp -a ./image ./image-copy
	before=$(pages_kib ./image)
	log "pages: ${before} KiB on disk"
	[ "$before" -gt 1000 ]

	restore_detached "$CT" --image-path ./image-copy
	plain=$(pages_kib ./image-copy)
	log "after a plain restore: ${plain} KiB"
	[ "$plain" -eq "$before" ]
	runcr delete -f "$CT"
	[ "$status" -eq 0 ]

	restore_detached "$CT" --auto-dedup --image-path ./image
	after=$(pages_kib ./image)
	log "after restore --auto-dedup: ${after} KiB ($(du -k --apparent-size ./image/pages-*.img | awk '{s += $1} END {print s}') KiB apparent)"
	[ "$after" -lt $((before / 4)) ]
	expect_progress "$CT" 0 "$token"
}

@test "checkpoint --page-server: the memory goes to a criu page-server, the rest to the image" {
	use_memory_workload
	start_workload
	local token=$TOKEN port=$((20000 + RANDOM % 20000))
	mkdir ./ps-images
	background criu page-server --images-dir "$BUNDLE/ps-images" --address 127.0.0.1 --port "$port" \
		-o page-server.log -v4
	wait_for 50 0.1 port_listening "$port"

	runcr checkpoint --page-server "127.0.0.1:$port" --image-path ./image "$CT"
	[ "$status" -eq 0 ]
	expect_state "$CT" gone
	ls ./ps-images/pages-*.img ./ps-images/pagemap-*.img
	run ! ls ./image/pages-*.img
	[ -f ./image/inventory.img ]
	read_state_file

	# Bring the memory to the image, as a migration would, and restore.
	cp ./ps-images/pages-*.img ./ps-images/pagemap-*.img ./image/
	restore_detached "$CT" --image-path ./image
	expect_progress "$CT" "$COUNTER" "$token"
}

@test "checkpoint --link-remap: files the container unlinked but holds open come back" {
	# fd 7: a fully unlinked file (CRIU keeps a ghost copy). fd 8: an
	# unlinked name whose inode lives on as r.keep; CRIU can only dump it by
	# linking it back under a temporary name, which --link-remap allows.
	use_counter_workload 'echo ghost-data >/tmp/g; echo remap-data >/tmp/r; ln /tmp/r /tmp/r.keep
exec 7</tmp/g 8</tmp/r; rm /tmp/g /tmp/r
'
	start_workload
	local token=$TOKEN

	runcr checkpoint --image-path ./image-no "$CT"
	[ "$status" -ne 0 ]
	grep -q 'link-remap' ./image-no/dump.log
	expect_state "$CT" running

	runcr checkpoint --link-remap --image-path ./image "$CT"
	[ "$status" -eq 0 ]
	ls "$BUNDLE"/rootfs/tmp/link_remap.*
	read_state_file

	restore_detached "$CT" --image-path ./image
	runcr exec "$CT" cat /proc/1/fd/7 /proc/1/fd/8
	[ "$status" -eq 0 ]
	[ "$output" = "ghost-data
remap-data" ]
	runcr exec "$CT" readlink /proc/1/fd/8
	[[ "$output" == *"/tmp/r (deleted)" ]]
	# The temporary link is gone again; the other name stayed.
	run ! ls "$BUNDLE"/rootfs/tmp/link_remap.*
	[ -f "$BUNDLE/rootfs/tmp/r.keep" ]
	expect_progress "$CT" "$COUNTER" "$token"
}

@test "checkpoint/restore --file-locks: a lock the container holds is held again after restore" {
	requires flocker
	install -m 0755 "$FLOCKER" "$BUNDLE/rootfs/bin/flocker"
	use_counter_workload 'flocker /tmp/lock &
'
	start_workload
	local token=$TOKEN lock=$BUNDLE/rootfs/tmp/lock
	wait_for 50 0.1 lock_is_held "$lock"

	runcr checkpoint --image-path ./image-no "$CT"
	[ "$status" -ne 0 ]
	grep -q 'file-locks' ./image-no/dump.log
	expect_state "$CT" running
	lock_is_held "$lock"

	runcr checkpoint --file-locks --image-path ./image "$CT"
	[ "$status" -eq 0 ]
	# Dumped and gone: nobody holds the lock now.
	run ! lock_is_held "$lock"
	read_state_file

	restore_detached "$CT" --file-locks --image-path ./image
	lock_is_held "$lock"
	expect_progress "$CT" "$COUNTER" "$token"

	# It is the container that holds it.
	runcr kill "$CT" KILL
	wait_for 50 0.1 container_stopped "$CT"
	run ! lock_is_held "$lock"
}

@test "checkpoint --lazy-pages --status-fd, restore --lazy-pages: memory migrates on demand" {
	requires criu_lazy_pages
	use_memory_workload
	start_workload
	local token=$TOKEN port=$((20000 + RANDOM % 20000)) p lr lw byte new=$CT-lazy
	mkdir ./image

	exec {p}<> <(:)
	# shellcheck disable=SC2094 # both ends of one pipe
	exec {lr}</proc/self/fd/$p {lw}>/proc/self/fd/$p {p}>&-
	(
		rc=0
		__runcr checkpoint --lazy-pages --page-server "127.0.0.1:$port" --status-fd "$lw" \
			--manage-cgroups-mode ignore --work-path ./work --image-path ./image "$CT" \
			>"$ROOT/lazy-ckpt.out" 2>&1 3>&- {lr}<&- || rc=$?
		echo "$rc" >"$ROOT/lazy-ckpt.rc"
	) &
	exec {lw}>&-
	# --status-fd gets "\0" once the pages can be served.
	byte=$(timeout 20 head -c1 <&"$lr" | od -An -tx1 | tr -d ' ')
	exec {lr}<&-
	[ "$byte" = 00 ]
	# The pages stay with the page server; the rest is in the image.
	[ -f ./image/inventory.img ]

	background criu lazy-pages --page-server --address 127.0.0.1 --port "$port" \
		-D "$BUNDLE/image" -W "$BUNDLE/image" -o lazy-pages.log -v4
	wait_for 50 0.1 test -S ./image/lazy-pages.socket
	restore_detached "$new" --lazy-pages --manage-cgroups-mode ignore --work-path ./image --image-path ./image
	wait_for 300 0.1 test -s "$ROOT/lazy-ckpt.rc"
	log "$(cat "$ROOT/lazy-ckpt.out")"
	[ "$(cat "$ROOT/lazy-ckpt.rc")" -eq 0 ]
	expect_state "$CT" gone
	expect_progress "$new" 0 "$token"
}

# runcr only: runc starts a lazy dump here and waits for a lazy-pages
# daemon whose transfer then fails.
@test "runcr refuses --lazy-pages where lazy migration can't work; the container keeps running" {
	requires runcr
	if probe criu_lazy_pages; then
		skip "lazy migration works here; the lazy-pages test covers it"
	fi
	log "lazy migration doesn't work here: $PROBE_RESULT"
	use_counter_workload
	start_workload
	local token=$TOKEN port=$((20000 + RANDOM % 20000))

	RUNCR_TEST_TIMEOUT=30 runcr checkpoint --lazy-pages --page-server "127.0.0.1:$port" --image-path ./image "$CT"
	[ "$status" -ne 0 ]
	[ "$status" -lt 124 ] # refused, not timed out
	[[ "$output" == *lazy* ]]
	expect_state "$CT" running
	read_state
	expect_progress "$CT" "$COUNTER" "$token"
}

@test "checkpoint --status-fd that is not open is refused; the container keeps running" {
	requires criu_feature uffd-noncoop
	use_counter_workload
	start_workload
	exec 99>&-

	runcr checkpoint --lazy-pages --status-fd 99 --image-path ./image "$CT"
	[ "$status" -ne 0 ]
	[[ "$output" == *status-fd* ]]
	[ ! -e ./image/inventory.img ]
	expect_state "$CT" running
}
