#!/usr/bin/env bats
# runcr inspect, and checkpoint/restore --print-stats: what they say about a
# checkpoint is checked against the container and the images themselves.

# shellcheck disable=SC2153 # TOKEN, COUNTER, ... are set by helpers
load helpers

# The memory workload (awk holding MEM_LINES strings of 500 bytes) under a
# shell that also runs a long sleep: a process tree of known shape.
use_tree_workload() {
	use_memory_workload
	set_args sh -c 'sleep 600 & awk -f /memtest.awk; wait'
}

# Sum of the sizes of the image directory's pages-*.img files.
pages_bytes() {
	stat -c %s "$1"/pages-*.img | awk '{s += $1} END {print s + 0}'
}

# What the detached restore's runcr printed: $CT_OUT after byte $1 (the
# memory workload itself prints nothing), once it contains $2.
restore_output() {
	local mark=$1 want=$2 _
	for _ in $(seq 50); do
		output=$(tail -c +"$((mark + 1))" "$CT_OUT")
		[[ $output == *"$want"* ]] && return 0
		sleep 0.1
	done
	fail "no '$want' in the restore's output: $output"
}

@test "inspect shows the processes, memory, manifest and dump statistics of a checkpoint" {
	requires runcr
	use_tree_workload
	start_workload
	local token=$TOKEN json awk_bytes

	runcr checkpoint --image-path ./image "$CT"
	[ "$status" -eq 0 ]
	read_state_file

	runcr inspect --format json ./image
	[ "$status" -eq 0 ]
	json=$output
	# The tree: sh is the container's first process; sleep and awk are its
	# children. busybox's shell runs the awk applet in a fork without exec:
	# the kernel's name of that process is awk, its command line the
	# shell's, as ps would show it.
	jq -e '.processes[0] | .pid == 1 and .depth == 0 and .args[0] == "sh" and .args[1] == "-c"' <<<"$json" ||
		fail "the first process is not the shell"
	jq -e '.processes[] | select(.args == ["sleep", "600"]) | .ppid == 1' <<<"$json" ||
		fail "no child 'sleep 600' of pid 1"
	jq -e '.processes[] | select(.comm == "awk") | .ppid == 1 and .state == "alive" and .args[0] == "sh"' <<<"$json" ||
		fail "no child awk of pid 1"
	# awk holds 8000 strings of 500 bytes: at least 4 MB, not hundreds.
	awk_bytes=$(jq '.processes[] | select(.comm == "awk") | .memory.bytes' <<<"$json")
	log "awk's memory in the images: $awk_bytes bytes"
	[ "$awk_bytes" -ge 4000000 ] && [ "$awk_bytes" -lt $((64 << 20)) ] ||
		fail "awk's memory ($awk_bytes bytes) does not fit the workload's 4 MB"
	# The memory counted is what CRIU wrote: its count and the pages files.
	jq -e '.memory.pages == .dump_stats.pages_written and .memory.bytes == .memory.pages * .page_size' <<<"$json" ||
		fail "memory pages differ from CRIU's pages_written"
	[ "$(jq .memory.bytes <<<"$json")" -eq "$(pages_bytes ./image)" ] ||
		fail "memory bytes differ from the size of pages-*.img ($(pages_bytes ./image))"
	jq -e --arg ct "$CT" --arg b "$BUNDLE" '.manifest.container_id == $ct and .manifest.bundle == $b and .manifest.state == "complete"' <<<"$json" ||
		fail "the manifest's id or bundle is wrong"
	jq -e '.dump_stats | .frozen_ms > 0 and .freezing_ms >= 0 and .memdump_ms > 0 and .pages_scanned >= .pages_written' <<<"$json" ||
		fail "no dump timings"
	# The container's stdio are pipes; the private namespaces runc gave it.
	jq -e '.files.by_kind.pipe >= 2' <<<"$json" || fail "no pipes among the open files"
	jq -e '[.namespaces[] | select(.own) | .kind] | index("pid") != null and index("mnt") != null' <<<"$json" ||
		fail "the container's own pid and mount namespaces are not shown"

	runcr inspect ./image
	[ "$status" -eq 0 ]
	[[ $output == *"Container:"*"$CT"* ]]
	# PID PPID THREADS STATE PAGES MEMORY NAME COMMAND, children indented
	grep -Eq '^ +1 +0 +1 +alive .* sh +sh -c ' <<<"$output" || fail "no line for the shell"
	grep -Eq '^ +[0-9]+ +1 +1 +alive .*   sleep +sleep 600$' <<<"$output" || fail "no line for sleep 600"
	grep -Eq '^ +[0-9]+ +1 +1 +alive .*   awk +sh -c ' <<<"$output" || fail "no line for awk"
	[[ $output == *"frozen time:"*" ms"* ]]
	[[ $output == *"pages written:"* ]]

	# Inspecting changed nothing: the checkpoint restores and carries on.
	restore_detached "$CT" --image-path ./image
	expect_progress "$CT" "$COUNTER" "$token"
}

@test "inspect reads an image made by runc checkpoint, which has no manifest" {
	requires runcr
	use_tree_workload
	start_workload

	runc checkpoint --image-path ./image "$CT"
	[ "$status" -eq 0 ]
	[ ! -e ./image/runcr-manifest.json ]

	runcr inspect ./image
	[ "$status" -eq 0 ]
	[[ $output == *"no manifest: made by runc or an older runcr"* ]]
	[[ $output == *"awk -f /memtest.awk"* ]]

	runcr inspect --format json ./image
	[ "$status" -eq 0 ]
	jq -e '.manifest == null and (.processes | length) >= 3 and .memory.pages > 0' <<<"$output" ||
		fail "runc's checkpoint misread"
	# runc leaves stats-dump in the image directory (its work directory).
	jq -e '.dump_stats.pages_written == .memory.pages' <<<"$output" || fail "no dump statistics"
}

@test "inspect of a missing path or a damaged image fails naming it" {
	requires runcr
	use_counter_workload
	start_workload
	runcr checkpoint --image-path ./image "$CT"
	[ "$status" -eq 0 ]

	runcr inspect ./nope
	[ "$status" -ne 0 ]
	[[ $output == *"./nope: no such file or directory"* ]]
	# A file that is no archive.
	runcr inspect ./image/pstree.img
	[ "$status" -ne 0 ]
	[[ $output == *"./image/pstree.img"* && $output == *"archive"* ]] || fail "unclear error: $output"
	runcr inspect "$BUNDLE"
	[ "$status" -ne 0 ]
	[[ $output == *"holds no checkpoint (no inventory.img)"* ]]

	local how file dir
	for how in truncate:pstree.img garbage:core-1.img truncate:pages-1.img remove:ids-1.img; do
		file=${how#*:}
		rm -rf ./bad
		cp -a ./image ./bad
		case ${how%%:*} in
		truncate) truncate -s 10 "./bad/$file" ;;
		garbage) head -c 300 /dev/urandom >"./bad/$file" ;;
		remove) rm "./bad/$file" ;;
		esac
		runcr inspect ./bad
		dir=$(readlink -f ./bad)
		[ "$status" -eq 1 ] || fail "inspect after $how exited $status"
		[[ $output != *panic* && $output != *goroutine* ]] || fail "inspect panicked after $how"
		[[ $output == *"bad checkpoint image: $dir/$file"* ]] || fail "the error after $how does not name $dir/$file"
	done
}

@test "checkpoint and restore --print-stats print CRIU's statistics; the restore carries on" {
	requires runcr
	use_memory_workload
	start_workload
	local token=$TOKEN mark written

	runcr checkpoint --print-stats --image-path ./image1 "$CT"
	[ "$status" -eq 0 ]
	[[ $output == *"frozen time:"*" ms"* ]]
	written=$(jq .dump_stats.pages_written ./image1/runcr-manifest.json)
	[ "$written" -gt 1000 ] # the workload's 4 MB
	[[ $output =~ "pages written:"\ +$written\  ]] || fail "the pages written printed differ from the manifest's $written"
	read_state_file

	mark=$(wc -c <"$CT_OUT")
	restore_detached "$CT" --print-stats --image-path ./image1
	restore_output "$mark" "restore time:"
	[[ $output == *"forking time:"*" ms"* ]]
	expect_progress "$CT" "$COUNTER" "$token"

	# With work directories, where CRIU writes its statistics.
	runcr checkpoint --print-stats --format json --work-path ./work-dump --image-path ./image2 "$CT"
	[ "$status" -eq 0 ]
	jq -e --slurpfile m ./image2/runcr-manifest.json \
		'.frozen_ms > 0 and .pages_written == $m[0].dump_stats.pages_written and .frozen_ms * 1000 == $m[0].dump_stats.frozen_time' <<<"$output" ||
		fail "checkpoint --print-stats --format json: $output"
	read_state_file

	mark=$(wc -c <"$CT_OUT")
	restore_detached "$CT" --print-stats --format json --work-path ./work-restore --image-path ./image2
	restore_output "$mark" "}"
	[ -s ./work-restore/stats-restore ]
	jq -e '.restore_ms > 0 and .forking_ms >= 0 and (.pages_restored | type) == "number"' <<<"$output" ||
		fail "restore --print-stats --format json: $output"
	expect_progress "$CT" "$COUNTER" "$token"

	# A bad --format is refused before anything happens.
	runcr checkpoint --print-stats --format xml --image-path ./image3 "$CT"
	[ "$status" -ne 0 ]
	[[ $output == *'--format: '*xml*'is not'* ]]
	[ ! -e ./image3 ]
	runcr restore --format json --image-path ./image2 "$CT-2"
	[ "$status" -ne 0 ]
	[[ $output == *"--format: only sets the format of --print-stats output"* ]]
	expect_progress "$CT" "$COUNTER" "$token"
}

@test "restore --print-stats in the foreground prints to stderr before waiting for the container" {
	requires runcr
	use_memory_workload
	start_workload
	local token=$TOKEN

	runcr checkpoint --image-path ./image "$CT"
	[ "$status" -eq 0 ]
	read_state_file

	# shellcheck disable=SC2016 # expanded by that bash
	background bash -c 'exec "$@" 2>"$0"' "$ROOT/fg.err" env "${CRIU_ENV[@]}" \
		"$RUNCR" --root "$STATE" restore --print-stats --image-path ./image "$CT"
	wait_for 100 0.1 grep -q "restore time:" "$ROOT/fg.err" || fail "no statistics on stderr: $(cat "$ROOT/fg.err")"
	# Printed while runcr waits for the container, which carries on.
	expect_state "$CT" running
	expect_progress "$CT" "$COUNTER" "$token"
	grep -q "forking time:" "$ROOT/fg.err"
	! grep -q "restore time:" "$ROOT/bg.out" || fail "statistics went to stdout"
}
