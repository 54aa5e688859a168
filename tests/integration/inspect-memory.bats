#!/usr/bin/env bats
# runcr inspect --env, --search, --search-regex and --dump-memory against a
# real checkpoint of a workload whose environment and memory hold marker
# strings chosen by the test.

# shellcheck disable=SC2153 # TOKEN, COUNTER, ... are set by helpers
load helpers

# The counter workload with a random marker in its environment
# (ENV_MARKER) and another only in a shell variable (MEM_MARKER), built
# at run time so that the command line does not hold it whole.
use_marker_workload() {
	ENV_MARKER=envmark-$RANDOM$RANDOM
	MEM_HALF=memmark-$RANDOM
	MEM_TAIL=$RANDOM$RANDOM
	MEM_MARKER=$MEM_HALF$MEM_TAIL
	# shellcheck disable=SC2016 # a jq variable
	update_config --arg e "RUNCR_TEST_MARKER=$ENV_MARKER" '.process.env += [$e] | .process.cwd = "/tmp"'
	use_counter_workload "m=$MEM_HALF; m=\${m}$MEM_TAIL; "
}

@test "inspect --env shows the environment and working directory of each process" {
	requires runcr
	use_marker_workload
	start_workload
	runcr checkpoint --leave-running --image-path ./image "$CT"
	[ "$status" -eq 0 ]

	runcr inspect --env ./image
	[ "$status" -eq 0 ]
	[[ $output == *"Environment:"*"RUNCR_TEST_MARKER=$ENV_MARKER"* ]] || fail "no marker in the environment shown"
	grep -Eq '^  pid 1 +/tmp$' <<<"$output" || fail "no working directory /tmp for pid 1"
	# Without --env the environment is not shown (it may hold secrets).
	runcr inspect ./image
	[ "$status" -eq 0 ]
	[[ $output != *"$ENV_MARKER"* ]] || fail "the environment shown without --env"
	[[ $output == *"Working directories:"* ]]

	runcr inspect --all --format json ./image
	[ "$status" -eq 0 ]
	jq -e --arg m "RUNCR_TEST_MARKER=$ENV_MARKER" '.processes[0] | .cwd == "/tmp" and (.env | index($m)) != null and (.env | index("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")) != null' <<<"$output" ||
		fail "pid 1's env or cwd is wrong in JSON"
	runcr inspect --format json ./image
	jq -e '[.processes[] | has("env")] | any | not' <<<"$output" || fail "env in JSON without --env"

	# The same through an exported archive.
	runcr checkpoint --export ./ckpt.tar.zst "$CT"
	[ "$status" -eq 0 ]
	runcr inspect --env ./ckpt.tar.zst
	[ "$status" -eq 0 ]
	[[ $output == *"RUNCR_TEST_MARKER=$ENV_MARKER"* ]] || fail "no marker in the archive's environment"
}

@test "inspect --search finds markers in a checkpoint's memory, with address and context" {
	requires runcr
	use_marker_workload
	start_workload
	runcr checkpoint --leave-running --image-path ./image "$CT"
	[ "$status" -eq 0 ]

	runcr inspect --search "$MEM_MARKER" --context 8 ./image
	[ "$status" -eq 0 ]
	grep -Eq "^1 +0x[0-9a-f]+ +.*m=\\[$MEM_MARKER\\]" <<<"$output" || fail "no match of the memory marker in pid 1"
	[[ $output =~ [1-9][0-9]*\ matches\ in ]] || fail "no summary"

	runcr inspect --search "$MEM_MARKER" --context 4 --pid 1 --format json ./image
	[ "$status" -eq 0 ]
	jq -e --arg m "$MEM_MARKER" '(.matches | length) >= 1 and all(.matches[]; .pid == 1 and .match == $m and (.address | startswith("0x")) and (.before | length) <= 4) and .searched[0].read.pages > 0' <<<"$output" ||
		fail "JSON search results are wrong"

	# The environment marker is in memory too; a regular expression finds
	# it with its name.
	runcr inspect --search-regex 'RUNCR_TEST_MARKER=envmark-[0-9]+' --format json ./image
	[ "$status" -eq 0 ]
	jq -e --arg m "RUNCR_TEST_MARKER=$ENV_MARKER" 'any(.matches[]; .match == $m)' <<<"$output" ||
		fail "the regular expression did not find the environment marker"

	# Nothing found is no error.
	runcr inspect --search "absent-$RANDOM-$RANDOM-marker" ./image
	[ "$status" -eq 0 ]
	[[ $output == *"0 matches in "* ]]

	# Bad requests name the flag.
	runcr inspect --search-regex '(' ./image
	[ "$status" -ne 0 ]
	[[ $output == *"--search-regex"* ]]
	runcr inspect --search x --pid 999999 ./image
	[ "$status" -ne 0 ]
	[[ $output == *"no pid 999999"* ]]
	runcr inspect --pid 1 ./image
	[ "$status" -ne 0 ]
	[[ $output == *"--pid: only applies to"* ]]
}

@test "inspect --dump-memory writes a process's memory regions, files named by address" {
	requires runcr
	use_marker_workload
	start_workload
	runcr checkpoint --image-path ./image "$CT"
	[ "$status" -eq 0 ]
	local addr file start end found=

	runcr inspect --search "$MEM_MARKER" --pid 1 --format json ./image
	[ "$status" -eq 0 ]
	addr=$(jq -r '.matches[0].address' <<<"$output")

	runcr inspect --dump-memory ./mem --pid 1 ./image
	[ "$status" -eq 0 ]
	[[ $output == *"pid 1: "*" pages "* ]]
	# The marker is in the file whose name spans its address, at the
	# offset of that address.
	for file in ./mem/*.bin; do
		start=$(basename "$file" .bin)
		end=0x${start#*-} start=0x${start%-*}
		[ "$(stat -c %s "$file")" -eq $((end - start)) ] || fail "$file has the wrong size"
		if ((addr >= start && addr < end)); then
			[ "$(tail -c +$((addr - start + 1)) "$file" | head -c ${#MEM_MARKER})" = "$MEM_MARKER" ] ||
				fail "no marker at $addr in $file"
			found=1
		fi
	done
	[ -n "$found" ] || fail "no file holds address $addr"
	# pages written == files' contents: sum of sizes is the memory pages.
	runcr inspect --format json ./image
	[ "$(jq '.processes[0].memory.bytes' <<<"$output")" -eq "$(cat ./mem/*.bin | wc -c)" ] ||
		fail "the files do not hold exactly pid 1's saved memory"

	# It never overwrites.
	runcr inspect --dump-memory ./mem --pid 1 ./image
	[ "$status" -ne 0 ]
	[[ $output == *"give an empty or new directory"* ]]
	runcr inspect --dump-memory ./mem2 ./image
	[ "$status" -ne 0 ]
	[[ $output == *"--pid"* ]]
	[ ! -e ./mem2 ]
}
