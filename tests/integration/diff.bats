#!/usr/bin/env bats
# runcr diff: two checkpoints of a counter, with known changes between
# them (the counter moved on, a process was started that holds a file
# open), are compared; and runcr show lists them.

# shellcheck disable=SC2153 # TOKEN, COUNTER, ... are set by helpers
load helpers

@test "diff shows the processes, files and memory pages that changed between two checkpoints" {
	requires runcr
	# A child of the counter's shell waits for /tmp/go, then starts
	# "sleep 600", opens /etc/hostname as fd 7 and becomes "sleep 601".
	# shellcheck disable=SC2016 # expanded by the container's shell
	use_counter_workload '(while [ ! -e /tmp/go ]; do sleep 0.1; done; sleep 600 & exec 7</etc/hostname; exec sleep 601) & '
	start_workload
	local json

	runcr checkpoint --leave-running --image-path ./a "$CT"
	[ "$status" -eq 0 ]
	# The known changes: a new process, another that became sleep 601
	# and holds /etc/hostname open as fd 7, and the counter moving on.
	touch "$BUNDLE/rootfs/tmp/go"
	wait_for 50 0.1 __runcr exec "$CT" sh -c 'ps | grep -q "[s]leep 601"' || fail "the workload did not start sleep 601"
	read_state
	expect_progress "$CT" "$COUNTER" "$TOKEN"
	runcr checkpoint --leave-running --image-path ./b "$CT"
	[ "$status" -eq 0 ]

	runcr diff --format json ./a ./b
	[ "$status" -eq 0 ]
	json=$output
	jq -e '[.processes_added[] | select(.args == ["sleep", "600"])] | length == 1' <<<"$json" ||
		fail "the new sleep 600 is not an added process"
	jq -e '[.files_opened[] | select(.path == "/etc/hostname" and .fd == 7)] | length == 1' <<<"$json" ||
		fail "/etc/hostname on fd 7 is not an opened file"
	jq -e '[.processes_changed[] | select(.comm == "sleep" and (.changes | index("comm: sh -> sleep")) != null)] | length == 1' <<<"$json" ||
		fail "the shell that became sleep 601 is not a changed process"
	jq -e '[.processes_added[], .processes_removed[] | has("env")] | any | not' <<<"$json" || fail "diff shows environments"
	# The counter's shell wrote to its memory: pages of pid 1 changed,
	# found by contents, and the total adds up.
	jq -e '(.memory[] | select(.pid == 1) | .changed > 0 and (.changed_ranges | length) > 0) and
		.memory_total.changed == ([.memory[].changed] | add)' <<<"$json" ||
		fail "no changed memory pages for pid 1"
	jq -e '.processes_removed | map(select(.args == ["sleep", "600"])) | length == 0' <<<"$json"

	runcr diff ./a ./b
	[ "$status" -eq 0 ]
	grep -Eq '^  \+ +pid [0-9]+ +sleep +sleep 600$' <<<"$output" || fail "no + line for sleep 600"
	grep -Eq '^  \+ +pid [0-9]+ fd 7 +/etc/hostname$' <<<"$output" || fail "no + line for /etc/hostname"
	grep -Eq '^  ~ +pid [0-9]+ +sleep +comm: sh -> sleep; args: sh -c .* -> sleep 601' <<<"$output" || fail "no ~ line for sleep 601"
	grep -Eq '^Memory pages: [1-9][0-9]* changed, ' <<<"$output" || fail "no changed pages in the text"

	# The other way round, what was added is removed.
	runcr diff --format json ./b ./a
	[ "$status" -eq 0 ]
	jq -e '(.processes_removed | map(select(.args == ["sleep", "600"])) | length == 1) and
		(.files_closed | map(select(.path == "/etc/hostname")) | length == 1)' <<<"$output" ||
		fail "the reverse diff does not remove the process and the file"

	# A checkpoint compared with itself: nothing changed.
	runcr diff --format json ./b ./b
	[ "$status" -eq 0 ]
	jq -e '(.processes_added + .processes_removed + .processes_changed + .files_opened + .files_closed | length) == 0 and
		.memory_total.changed == 0 and .memory_total.added == 0 and .memory_total.removed == 0 and .memory_total.unchanged > 0' <<<"$output" ||
		fail "a checkpoint differs from itself"

	# An archive against a directory: the last checkpoint, exported.
	runcr checkpoint --export ./c.tar.zst "$CT"
	[ "$status" -eq 0 ]
	runcr diff --format json ./b ./c.tar.zst
	[ "$status" -eq 0 ]
	jq -e '.b == "./c.tar.zst" and (.memory[] | select(.pid == 1) | .changed > 0)' <<<"$output" ||
		fail "archive diff"

	runcr show ./a ./b ./c.tar.zst
	[ "$status" -eq 0 ]
	grep -Eq "^$CT +runcr +.* yes +\./c\.tar\.zst$" <<<"$output" || fail "show does not list the archive"
	runcr show --format json .
	[ "$status" -eq 0 ]
	jq -e --arg ct "$CT" 'length == 3 and all(.[]; .container == $ct and .engine == "runcr" and .complete and .memory > 0 and .size > 0)' <<<"$output" ||
		fail "show of the directory does not list the 3 checkpoints"
}

@test "diff and show of missing or damaged checkpoints fail naming them" {
	requires runcr
	use_counter_workload
	start_workload
	runcr checkpoint --image-path ./a "$CT"
	[ "$status" -eq 0 ]

	runcr diff ./a ./nope
	[ "$status" -ne 0 ]
	[[ $output == *"./nope: no such file or directory"* ]]
	runcr diff ./a
	[ "$status" -ne 0 ]
	[[ $output == *'requires exactly 2 arguments'* ]]

	cp -a ./a ./bad
	truncate -s 10 ./bad/pstree.img
	runcr diff ./a ./bad
	[ "$status" -ne 0 ]
	[[ $output == *"bad checkpoint image: $(readlink -f ./bad)/pstree.img"* ]] || fail "the damaged file is not named"

	# show lists the damaged one as not complete, with the reason.
	runcr show --format json ./a ./bad
	[ "$status" -eq 0 ]
	jq -e '(map(select(.path == "./bad")) | .[0] | .complete == false and (.error | contains("pstree.img"))) and
		(map(select(.path == "./a")) | .[0].complete)' <<<"$output" || fail "show: $output"
	runcr show ./nope
	[ "$status" -ne 0 ]
	[[ $output == *"./nope: no such file or directory"* ]]
}
