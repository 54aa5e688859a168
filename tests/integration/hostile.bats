#!/usr/bin/env bats
# Hostile images and archives: every pathological case measured in the
# issue "Hostile input" (items 2, 3 and 5) is refused fast, in bounded
# memory, naming the file and the limit, and leaves nothing behind; a
# damaged image is refused before CRIU runs. Sparse files: no real disk.

# shellcheck disable=SC2153 # TOKEN, COUNTER, ... are set by helpers
load helpers

setup() {
	setup_common
	setup_bundle
	requires runcr
	export TMPDIR=$ROOT/tmp
	mkdir -p "$TMPDIR" "$ROOT/out"
}

# timed_runcr: runcr ARGS under /usr/bin/time (set ARGS first).
timed_runcr() {
	run /usr/bin/time -f 'TIME %e %M' timeout -k 5 60 "$RUNCR" --root "$STATE" "${ARGS[@]}"
	log "\$ runcr ${ARGS[*]} (status=$status)"
	log "$output"
}

# expect_refused_fast SECONDS MAXRSS_KIB WANT...: the last timed_runcr
# failed within SECONDS, peak RSS under MAXRSS_KIB, its message
# containing every WANT.
expect_refused_fast() {
	local secs=$1 rss=$2 line t m w out
	shift 2
	[ "$status" -ne 0 ] || fail "accepted, want a refusal"
	line=$(grep '^TIME ' <<<"$output" | tail -1)
	read -r _ t m <<<"$line"
	awk -v t="$t" -v s="$secs" 'BEGIN { exit !(t < s) }' || fail "took $t s, want < $secs"
	[ "$m" -lt "$rss" ] || fail "peak RSS $m KiB, want < $rss"
	out=${output//\\\"/\"}
	for w in "$@"; do
		[[ "$out" == *"$w"* ]] || fail "message lacks \"$w\""
	done
}

# A real checkpoint of the memory workload in $ROOT/image.
checkpoint_image() {
	use_memory_workload
	start_workload
	runcr checkpoint --image-path "$ROOT/image" "$CT"
	[ "$status" -eq 0 ] || fail "checkpoint failed"
	read_state_file
}

@test "inspect and restore refuse a zero-filled pstree, a 3 GiB sparse pagemap and a 4 GiB core in under a second, naming the file and the limit" {
	checkpoint_image
	local pm
	# shellcheck disable=SC2010,SC2012 # image names are plain
	pm=$(cd "$ROOT/image" && ls pagemap-*.img | grep -v shmem | head -1)
	cp -a "$ROOT/image" "$ROOT/pstree"
	head -c 8 "$ROOT/image/pstree.img" >"$ROOT/pstree/pstree.img"
	truncate -s 512M "$ROOT/pstree/pstree.img"
	cp -a "$ROOT/image" "$ROOT/pagemap"
	truncate -s 3G "$ROOT/pagemap/$pm"
	cp -a "$ROOT/image" "$ROOT/core"
	truncate -s 4G "$ROOT/core/core-1.img"

	local c
	for c in "pstree|pstree.img" "pagemap|$pm" "core|core-1.img"; do
		ARGS=(inspect "$ROOT/${c%%|*}")
		timed_runcr
		expect_refused_fast 1 100000 "$ROOT/${c%%|*}/${c#*|}" "runcr's limit"
	done
	# restore: the 3 GiB pagemap took 17 s and 3 GiB of memory to refuse.
	# Its limit is checked before the digests (which would say its size
	# differs from the one recorded), and without a manifest too (as
	# runc's images).
	ARGS=(restore -d --image-path "$ROOT/pagemap" -b "$BUNDLE" "$CT")
	timed_runcr </dev/null
	expect_refused_fast 1 100000 "$ROOT/pagemap/$pm" "runcr's limit"
	rm "$ROOT/pagemap/runcr-manifest.json"
	timed_runcr </dev/null
	expect_refused_fast 1 100000 "$ROOT/pagemap/$pm" "runcr's limit"
	expect_state "$CT" gone
	# The intact images still restore.
	restore_detached "$CT" --image-path "$ROOT/image"
	expect_progress "$CT" "$COUNTER" "$TOKEN"
}

@test "a page flipped in pages-1.img is refused by restore and inspect --verify, naming the file; the intact images restore" {
	checkpoint_image
	local p
	jq -e '.images | length > 0' "$ROOT/image/runcr-manifest.json" >/dev/null || fail "no digests in the manifest"
	runcr inspect --verify "$ROOT/image"
	[ "$status" -eq 0 ] || fail "inspect --verify of intact images failed"
	[[ "$output" == *"Verified:"*xxh3-64m* ]] || fail "inspect --verify says nothing of it"

	cp -a "$ROOT/image" "$ROOT/flipped"
	# shellcheck disable=SC2012 # image names are plain
	p=$(ls -S "$ROOT"/flipped/pages-*.img | head -1)
	head -c 4096 /dev/urandom | dd of="$p" bs=4096 seek=1 conv=notrunc status=none
	runcr restore -d --image-path "$ROOT/flipped" "$CT" </dev/null
	[ "$status" -ne 0 ] || fail "restored damaged images"
	[[ "$output" == *"$p"*"content changed"* ]] || fail "the refusal does not name $p"
	expect_state "$CT" gone
	[ ! -e "$ROOT/flipped/restore.log" ] || fail "CRIU ran on damaged images"
	runcr inspect --verify "$ROOT/flipped"
	[ "$status" -ne 0 ] && [[ "$output" == *"$p"* ]] || fail "inspect --verify passed damaged images"

	restore_detached "$CT" --image-path "$ROOT/image"
	expect_progress "$CT" "$COUNTER" "$TOKEN"
}

@test "restore --import of a small zstd archive holding a 10 GiB member is refused from its header; nothing is written" {
	command -v zstd >/dev/null || skip "needs zstd"
	# The measured case: one 10 GiB member of zeros, ~355 KiB compressed,
	# no size declaration (as an old runcr's archive or a hostile one).
	# Made fast: the member's tar header, then ten zstd frames of 1 GiB
	# of zeros each (frames concatenate), then tar's end.
	mkdir "$ROOT/bomb"
	truncate -s 10G "$ROOT/bomb/pages-1.img"
	{
		tar -C "$ROOT/bomb" -c pages-1.img | head -c 512 | zstd -q -1
		head -c 1G /dev/zero | zstd -q -1 >"$ROOT/z1"
		for _ in 1 2 3 4 5 6 7 8 9 10; do cat "$ROOT/z1"; done
		head -c 1024 /dev/zero | zstd -q -1
	} >"$ROOT/out/bomb.tar.zst"
	rm -rf "$ROOT/bomb" "$ROOT/z1"
	log "archive: $(stat -c %s "$ROOT/out/bomb.tar.zst") bytes"
	zstd -dc "$ROOT/out/bomb.tar.zst" | tar -tv | grep -q ' 10737418240 .*pages-1.img' || fail "not a 10 GiB member"

	# The default limit (8G) refuses it, from its header.
	ARGS=(restore -d --import "$ROOT/out/bomb.tar.zst" -b "$BUNDLE" "$CT")
	timed_runcr </dev/null
	expect_refused_fast 1 100000 '"pages-1.img"' "the default --import-limit 8G" "before it was written"
	[ -z "$(ls -A "$TMPDIR")" ] || fail "left in \$TMPDIR: $(ls -A "$TMPDIR")"
	ARGS=(restore -d --import "$ROOT/out/bomb.tar.zst" --import-limit 1G -b "$BUNDLE" "$CT")
	timed_runcr </dev/null
	expect_refused_fast 1 100000 '"pages-1.img"' "--import-limit 1G" "before it was written"
	[ -z "$(ls -A "$TMPDIR")" ] || fail "left in \$TMPDIR: $(ls -A "$TMPDIR")"
	# The same from the environment, and from standard input.
	ARGS=(restore -d --import - -b "$BUNDLE" "$CT")
	RUNCR_IMPORT_LIMIT=2G timed_runcr <"$ROOT/out/bomb.tar.zst"
	expect_refused_fast 1 100000 "--import-limit 2G"
	[ -z "$(ls -A "$TMPDIR")" ] || fail "left in \$TMPDIR: $(ls -A "$TMPDIR")"
}

@test "runcr's archives declare their sizes first; an entry past the declaration is refused before it is written" {
	checkpoint_image
	restore_detached "$CT" --image-path "$ROOT/image"
	runcr checkpoint --export "$ROOT/out/ct.tar.zst" "$CT"
	[ "$status" -eq 0 ] || fail "checkpoint --export failed"
	zstd -dc "$ROOT/out/ct.tar.zst" | tar -t >"$ROOT/list"
	[ "$(head -1 "$ROOT/list")" = .runcr-sizes.json ] || fail "first entry: $(head -1 "$ROOT/list")"
	zstd -dc "$ROOT/out/ct.tar.zst" | tar -xO .runcr-sizes.json | jq -e '.total > 0 and (.files | has("inventory.img"))' >/dev/null

	# Rewrite it with one more member, declared by nobody.
	mkdir "$ROOT/x"
	zstd -dc "$ROOT/out/ct.tar.zst" | tar -C "$ROOT/x" -x
	truncate -s 1G "$ROOT/x/extra.img"
	# shellcheck disable=SC2046 # the archive's order, from its list
	tar -C "$ROOT/x" -c .runcr-sizes.json extra.img $(grep -v '^.runcr-sizes.json$' "$ROOT/list") | zstd -q -1 >"$ROOT/out/extra.tar.zst"
	rm -rf "$ROOT/x"
	ARGS=(restore -d --import "$ROOT/out/extra.tar.zst" "$CT")
	timed_runcr </dev/null
	expect_refused_fast 1 100000 '"extra.img"' "is not among the entries .runcr-sizes.json declares"
	[ -z "$(ls -A "$TMPDIR")" ] || fail "left in \$TMPDIR: $(ls -A "$TMPDIR")"
	# inspect --verify reads the intact archive; restore --import restores it.
	runcr inspect --verify "$ROOT/out/ct.tar.zst"
	[ "$status" -eq 0 ] || fail "inspect --verify of the archive failed"
	restore_detached "$CT" --import "$ROOT/out/ct.tar.zst"
	expect_progress "$CT" "$COUNTER" "$TOKEN"
}

# hang_criu FLAG: a criu that is the real one, except that once FLAG exists
# every run but `--version` hangs (a child of its own holding on), as a
# CRIU stuck on a kernel or a lock would; the child's pid goes to FLAG.pid.
hang_criu() {
	local real
	real=$(command -v criu) || fail "no criu"
	cat >"$ROOT/criu-wrap" <<EOS
#!/bin/sh
if [ "\$1" != --version ] && [ -e "$1" ]; then
	sleep 1000 &
	echo \$! >"$1.pid"
	wait
fi
exec "$real" "\$@"
EOS
	chmod +x "$ROOT/criu-wrap"
}

# expect_no_criu_left FLAG: the hung criu and its child are gone, and so
# is every runcr-criu-* link this test made.
expect_no_criu_left() {
	local pid
	pid=$(cat "$1.pid" 2>/dev/null) || fail "the criu never hung"
	wait_for 50 0.1 pid_gone "$pid" || fail "the hung criu's child $pid is still running"
	! pgrep -f "$ROOT/criu-wrap" || fail "the hung criu was left running"
	[ -z "$(find "$TMPDIR" -maxdepth 1 -name 'runcr-criu-*')" ] || fail "a runcr-criu-* link was left behind"
}

@test "--criu-timeout: a criu that hangs in its probe, its dump or its restore is stopped; the container is as it was, nothing left" {
	use_memory_workload
	start_workload
	hang_criu "$ROOT/hang"
	local token=$TOKEN start took
	# Caches for this criu made while it works: the dump itself hangs.
	runcr --criu "$ROOT/criu-wrap" check
	[ "$status" -eq 0 ] || fail "check with the working wrapper failed"

	touch "$ROOT/hang"
	start=$SECONDS
	runcr --criu "$ROOT/criu-wrap" --criu-timeout 2s checkpoint --image-path "$ROOT/img" "$CT"
	took=$((SECONDS - start))
	[ "$status" -ne 0 ] || fail "the checkpoint succeeded with a hung criu"
	[[ "$output" == *"stopped waiting for CRIU (the dump)"*"--criu-timeout 2s passed"*"left running"* ]] || fail "the error does not say why"
	[ "$took" -lt 20 ] || fail "took $took s with --criu-timeout 2s"
	expect_no_criu_left "$ROOT/hang"
	[ ! -e "$ROOT/img/runcr-manifest.json" ] || fail "a manifest was left for no checkpoint"
	expect_state "$CT" running
	read_state
	expect_progress "$CT" "$COUNTER" "$token"

	# The container checkpoints with the working criu; a restore that
	# hangs leaves no container and the images as they were.
	rm -f "$ROOT/hang" "$ROOT/hang.pid"
	runcr checkpoint --image-path "$ROOT/img" "$CT"
	[ "$status" -eq 0 ] || fail "checkpoint failed"
	read_state_file
	local sums
	sums=$(cd "$ROOT/img" && sha256sum ./*.img)
	# The working criu's kernel feature cache replaced the wrapper's.
	runcr --criu "$ROOT/criu-wrap" check
	[ "$status" -eq 0 ] || fail "check with the working wrapper failed"
	touch "$ROOT/hang"
	RUNCR_CRIU_TIMEOUT=2s runcr --criu "$ROOT/criu-wrap" restore -d --image-path "$ROOT/img" "$CT" </dev/null
	[ "$status" -ne 0 ] || fail "the restore succeeded with a hung criu"
	[[ "$output" == *"stopped waiting for CRIU (the restore)"*"--criu-timeout 2s passed"* ]] || fail "the error does not say why"
	expect_no_criu_left "$ROOT/hang"
	expect_state "$CT" gone
	[ "$(cd "$ROOT/img" && sha256sum ./*.img)" = "$sums" ] || fail "the images changed"
	restore_detached "$CT" --image-path "$ROOT/img"
	expect_progress "$CT" "$COUNTER" "$TOKEN"
}

@test "--criu-timeout: check and checkpoint with a criu that hangs at its first probe end in time, the container untouched" {
	use_memory_workload
	start_workload
	hang_criu "$ROOT/hang"
	touch "$ROOT/hang"
	local token=$TOKEN start took
	start=$SECONDS
	runcr --criu "$ROOT/criu-wrap" --criu-timeout 2s check
	took=$((SECONDS - start))
	[ "$status" -ne 0 ] || fail "check passed with a hung criu"
	[[ "$output" == *"--criu-timeout 2s passed"* ]] || fail "the error does not name --criu-timeout"
	[ "$took" -lt 20 ] || fail "check took $took s with --criu-timeout 2s"
	expect_no_criu_left "$ROOT/hang"
	rm -f "$ROOT/hang.pid"

	runcr --criu "$ROOT/criu-wrap" --criu-timeout 2s checkpoint --image-path "$ROOT/img" "$CT"
	[ "$status" -ne 0 ] || fail "the checkpoint succeeded with a hung criu"
	[[ "$output" == *"--criu-timeout 2s passed"* ]] || fail "the error does not name --criu-timeout"
	expect_no_criu_left "$ROOT/hang"
	expect_state "$CT" running
	read_state
	expect_progress "$CT" "$COUNTER" "$token"
}
