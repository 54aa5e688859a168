#!/usr/bin/env bats
# runcr checkpoint --export and restore --import: one archive file holding
# the images, the manifest and config.json, restored under a new id.

# shellcheck disable=SC2153 # TOKEN, COUNTER, ... are set by helpers
load helpers

setup() {
	setup_common
	setup_bundle
	requires runcr
	# Temporary image directories go here, where the tests can see them.
	export TMPDIR=$ROOT/tmp
	mkdir -p "$TMPDIR" "$ROOT/out" "$ROOT/elsewhere"
}

# The first bytes of file $1, as hex.
magic() {
	head -c "$2" "$1" | od -An -tx1 | tr -d ' \n'
}

# Fails unless $TMPDIR is empty (no temporary image directory left).
expect_no_temp_dirs() {
	local left
	left=$(ls -A "$TMPDIR")
	[ -z "$left" ] || fail "left in \$TMPDIR: $left"
}

@test "checkpoint --export: one 0600 archive; restore --import under a new id elsewhere carries on with memory intact" {
	use_memory_workload
	start_workload
	local token=$TOKEN at archive=$ROOT/out/ct.tar.zst

	runcr checkpoint --export "$archive" "$CT"
	[ "$status" -eq 0 ] || fail "checkpoint --export failed"
	expect_state "$CT" gone
	[ "$(stat -c %a "$archive")" = 600 ] || fail "archive mode $(stat -c %a "$archive")"
	[ "$(magic "$archive" 4)" = 28b52ffd ] || fail "not zstd: $(magic "$archive" 4)"
	# Only the archive: no temporary file next to it, no ./checkpoint,
	# and the private image directory is gone.
	[ "$(ls -A "$ROOT/out")" = ct.tar.zst ] || fail "next to the archive: $(ls -A "$ROOT/out")"
	[ ! -e "$BUNDLE/checkpoint" ]
	expect_no_temp_dirs
	# What it holds: the size declaration, config.json, the images, the
	# manifest last.
	zstd -dc "$archive" | tar -t >"$ROOT/list"
	[ "$(head -1 "$ROOT/list")" = .runcr-sizes.json ]
	[ "$(sed -n 2p "$ROOT/list")" = config.json ]
	[ "$(tail -1 "$ROOT/list")" = runcr-manifest.json ]
	grep -qx inventory.img "$ROOT/list"
	grep -q '^pages-.*\.img$' "$ROOT/list"
	# inspect reads the archive as it reads an image directory.
	runcr inspect --format json "$archive"
	[ "$status" -eq 0 ] || fail "inspect of the archive failed"
	[ "$(jq -r .manifest.container_id <<<"$output")" = "$CT" ]
	[ "$(jq -r .dir <<<"$output")" = "$archive" ]
	jq -e '.processes | length > 0' <<<"$output" >/dev/null
	expect_no_temp_dirs
	read_state_file
	at=$COUNTER

	# Another directory, a new id, neither --bundle nor --image-path: the
	# manifest in the archive names the bundle.
	cd "$ROOT/elsewhere"
	restore_detached "$CT-2" --import "$archive"
	expect_progress "$CT-2" "$at" "$token"
	expect_no_temp_dirs
	[ -z "$(ls -A "$ROOT/elsewhere")" ] || fail "restore left files in the working directory"
}

@test "checkpoint --compress gzip and none round trip; the name plays no part; --import --image-path unpacks there" {
	use_memory_workload
	start_workload
	local token=$TOKEN

	# gzip, in a file whose name says zstd.
	runcr checkpoint --compress gzip --export "$ROOT/out/gzip.tar.zst" "$CT"
	[ "$status" -eq 0 ] || fail "checkpoint --compress gzip failed"
	[ "$(magic "$ROOT/out/gzip.tar.zst" 2)" = 1f8b ] || fail "not gzip"
	gzip -t "$ROOT/out/gzip.tar.zst"
	read_state_file
	cd "$ROOT/elsewhere"
	restore_detached "$CT-g" --import "$ROOT/out/gzip.tar.zst"
	expect_progress "$CT-g" "$COUNTER" "$token"
	expect_no_temp_dirs

	# none: a plain tar, which tar reads as it is.
	runcr checkpoint --compress none --export "$ROOT/out/plain.tgz" "$CT-g"
	[ "$status" -eq 0 ] || fail "checkpoint --compress none failed"
	tar -tf "$ROOT/out/plain.tgz" | grep -qx runcr-manifest.json
	read_state_file
	restore_detached "$CT-n" --import "$ROOT/out/plain.tgz" --image-path "$ROOT/unpacked"
	expect_progress "$CT-n" "$COUNTER" "$token"
	# --image-path: unpacked there and kept, with CRIU's restore.log.
	expect_image "$ROOT/unpacked"
	[ -f "$ROOT/unpacked/runcr-manifest.json" ] && [ -f "$ROOT/unpacked/config.json" ]
	grep -q 'Restore finished successfully' "$ROOT/unpacked/restore.log"
	[ "$(stat -c %a "$ROOT/unpacked")" = 700 ]
	expect_no_temp_dirs
}

@test "restore --import refuses a truncated and a corrupt archive, naming the file, and leaves nothing behind" {
	use_memory_workload
	start_workload
	local good=$ROOT/out/good.tar.zst size f block errors=

	runcr checkpoint --leave-running --export "$good" "$CT"
	[ "$status" -eq 0 ] || fail "checkpoint --export failed"
	size=$(stat -c %s "$good")
	head -c $((size * 2 / 3)) "$good" >"$ROOT/out/truncated.tar.zst"
	cp "$good" "$ROOT/out/corrupt.tar.zst"
	printf 'garbage!' | dd of="$ROOT/out/corrupt.tar.zst" bs=1 seek=$((size / 2)) conv=notrunc status=none
	# A plain tar cut right before its manifest: every entry so far is
	# whole, only the manifest (the archive's commit record) is missing.
	zstd -dc "$good" >"$ROOT/whole.tar"
	block=$(tar -tRf "$ROOT/whole.tar" | sed -n 's/^block \([0-9]*\): runcr-manifest.json$/\1/p')
	[ -n "$block" ] || fail "no manifest in the archive"
	head -c $((block * 512)) "$ROOT/whole.tar" >"$ROOT/out/no-manifest.tar"

	cd "$ROOT/elsewhere"
	for f in truncated.tar.zst corrupt.tar.zst no-manifest.tar; do
		runcr restore -d --import "$ROOT/out/$f" "$CT-$f"
		[ "$status" -ne 0 ] || fail "$f was restored"
		[[ $output == *"--import $ROOT/out/$f"* ]] || fail "the error does not name $f"
		[[ $output == *"bad archive"* ]] || fail "the error does not say the archive is bad"
		errors+=$output
		expect_state "$CT-$f" gone
		expect_no_temp_dirs
	done
	[[ $errors == *"no runcr-manifest.json after entry"* ]] || fail "the cut tar was not refused for its missing manifest"
	# The original carried on throughout.
	expect_progress "$CT" "$COUNTER" "$TOKEN"
}

@test "checkpoint --export to a missing directory is refused before freezing: the container carries on" {
	use_memory_workload
	start_workload
	local token=$TOKEN

	runcr checkpoint --export "$ROOT/missing/ct.tar.zst" "$CT"
	[ "$status" -ne 0 ] || fail "export to a missing directory succeeded"
	[[ $output == *"--export"*"$ROOT/missing"* ]] || fail "the error does not name --export and the directory"
	[[ $output == *"the container was not checkpointed"* ]]
	expect_state "$CT" running
	read_state
	expect_progress "$CT" "$COUNTER" "$token"
	expect_no_temp_dirs
	[ ! -e "$ROOT/missing" ]
}

@test "checkpoint --export that fails after CRIU succeeded keeps the images, says where, and they restore" {
	use_memory_workload
	start_workload
	local token=$TOKEN images

	# A file system too small for the archive: CRIU writes the images to
	# $TMPDIR, then writing the archive fails.
	mkdir "$ROOT/small"
	mount -t tmpfs -o size=16k runcr-test-small "$ROOT/small"
	runcr checkpoint --export "$ROOT/small/ct.tar.zst" "$CT"
	[ "$status" -ne 0 ] || fail "export to a full file system succeeded"
	[[ $output == *"--export $ROOT/small/ct.tar.zst"* ]] || fail "the error does not name --export"
	images=$(grep -o "images are kept in [^:]*" <<<"$output" | head -1 | sed 's/images are kept in //')
	[ -n "$images" ] || fail "the error does not say where the images are: $output"
	log "images kept in $images"
	[[ $images == "$TMPDIR"/runcr-export-* ]]
	expect_image "$images"
	# No partial archive, and no temporary file.
	[ -z "$(ls -A "$ROOT/small")" ] || fail "left on the full file system: $(ls -A "$ROOT/small")"
	# CRIU ended the processes; the kept images bring them back.
	expect_state "$CT" gone
	read_state_file
	cd "$ROOT/elsewhere"
	restore_detached "$CT" --image-path "$images"
	expect_progress "$CT" "$COUNTER" "$token"
}

@test "checkpoint --export writes through /dev/null, /dev/full and a FIFO, never replacing them; the container runs on" {
	use_counter_workload
	start_workload
	local token=$TOKEN
	# /dev/full: the write fails (ENOSPC), the device stays a device.
	runcr checkpoint --leave-running --export /dev/full "$CT"
	[ "$status" -ne 0 ]
	[[ $output == *"/dev/full"* ]] || fail "the error does not name /dev/full"
	# The images CRIU wrote are kept, and the error says where.
	[[ $output == *"images are kept in "*"/runcr-export-"* ]] || fail "the error does not say where the images are: $output"
	rm -rf "$TMPDIR"/runcr-export-*
	[ -c /dev/full ] || fail "/dev/full was replaced: $(ls -l /dev/full)"
	expect_state "$CT" running
	runcr checkpoint --leave-running --export /dev/null "$CT"
	[ "$status" -eq 0 ]
	[ -c /dev/null ] || fail "/dev/null was replaced: $(ls -l /dev/null)"
	expect_state "$CT" running
	read_state
	expect_progress "$CT" "$COUNTER" "$token"
	expect_no_temp_dirs

	# A FIFO with a reader: the archive arrives whole and restores.
	mkfifo "$ROOT/fifo"
	local reader
	cat "$ROOT/fifo" >"$ROOT/out/from-fifo.tar.zst" &
	reader=$!
	runcr checkpoint --export "$ROOT/fifo" "$CT"
	[ "$status" -eq 0 ]
	wait "$reader"
	[ -p "$ROOT/fifo" ] || fail "the FIFO was replaced"
	read_state_file
	restore_detached "$CT-2" --import "$ROOT/out/from-fifo.tar.zst"
	expect_progress "$CT-2" "$COUNTER" "$token"
}

@test "checkpoint --export - piped into restore --import -: no archive file, the workload carries on" {
	use_memory_workload
	start_workload
	local token=$TOKEN rc=0
	setup_pipes
	# shellcheck disable=SC2261 # >& with a descriptor number dups stdout only
	__runcr checkpoint --export - "$CT" | __runcr restore -d --import - "$CT-2" >&"$STDOUT_W" 2>&"$STDOUT_W" || rc=$?
	[ "$rc" -eq 0 ] || fail "checkpoint --export - | restore --import - failed ($rc): $(tail -5 "$CT_OUT")"
	expect_state "$CT" gone
	read_state_file
	expect_state "$CT-2" running
	expect_progress "$CT-2" "$COUNTER" "$token"
	expect_no_temp_dirs
	[ -z "$(ls -A "$ROOT/out")" ] || fail "an archive file was written: $(ls -A "$ROOT/out")"
}
