#!/usr/bin/env bats
# Terminals: a terminal container's pty goes to --console-socket on restore;
# --shell-job for a process tree attached to a terminal.

# shellcheck disable=SC2153 # TOKEN, COUNTER, ... are set by helpers
load helpers

# Starts a terminal container whose pty is drained by recvtty.
start_terminal_workload() {
	update_config '.process.terminal = true'
	use_counter_workload
	start_recvtty null
	runcr run -d --console-socket "$CONSOLE_SOCKET" "$CT"
	[ "$status" -eq 0 ] || fail "runcr run -d --console-socket failed"
	expect_state "$CT" running
	read_state
}

# Prints "SID TTY_NR" of process $1.
session_of() {
	awk '{print $6, $7}' "/proc/$1/stat"
}

@test "restore --console-socket: a terminal container's new pty is sent to the socket" {
	requires recvtty
	start_terminal_workload
	local token=$TOKEN pid at tty last
	pid=$(container_pid "$CT")
	tty=$(session_of "$pid")
	[ "${tty#* }" -ne 0 ]

	runcr checkpoint --image-path ./image "$CT"
	[ "$status" -eq 0 ]
	expect_state "$CT" gone
	read_state_file
	at=$COUNTER

	# A fresh receiver that copies what it gets to $ROOT/tty.out.
	: >"$ROOT/tty.out"
	start_recvtty single
	runcr restore -d --console-socket "$CONSOLE_SOCKET" --image-path ./image "$CT"
	[ "$status" -eq 0 ]
	expect_progress "$CT" "$at" "$token"
	pid=$(container_pid "$CT")
	# Still a session leader with a controlling terminal, now the new pty.
	[ "$(session_of "$pid" | cut -d' ' -f1)" = "$pid" ]
	[ "$(session_of "$pid" | cut -d' ' -f2)" -ne 0 ]
	runcr exec "$CT" readlink /proc/1/fd/1
	[[ "$output" == /dev/pts/* ]]
	# The workload's output after restore arrives through the socket.
	wait_for 50 0.1 tty_counter_above "$at"
	last=$(tr -d '\r' <"$ROOT/tty.out" | grep -E '^[0-9]+$' | tail -1)
	log "last counter seen through the console socket: $last (dumped at $at)"
}

@test "checkpoint/restore --shell-job: a terminal container keeps its controlling terminal" {
	requires recvtty
	start_terminal_workload
	local token=$TOKEN pid at

	runcr checkpoint --shell-job --image-path ./image "$CT"
	[ "$status" -eq 0 ]
	expect_state "$CT" gone
	read_state_file
	at=$COUNTER

	runcr restore -d --shell-job --console-socket "$CONSOLE_SOCKET" --image-path ./image "$CT"
	[ "$status" -eq 0 ]
	expect_progress "$CT" "$at" "$token"
	pid=$(container_pid "$CT")
	[ "$(session_of "$pid" | cut -d' ' -f2)" -ne 0 ]
	runcr exec "$CT" readlink /proc/1/fd/0
	[[ "$output" == /dev/pts/* ]]
}

@test "checkpoint --shell-job: a container attached to an outside terminal is dumped only with it" {
	requires host_cmd socat
	use_counter_workload
	# A pty held open by socat; the container's stdio is its slave.
	background socat -u "PTY,link=$ROOT/pty,rawer" "OPEN:$ROOT/pty.out,creat,append"
	wait_for 50 0.1 test -e "$ROOT/pty"
	__runcr run -d "$CT" <>"$ROOT/pty" >&0 2>&0
	log "\$ $RUNCR --root $STATE run -d $CT (stdio: $(readlink "$ROOT/pty"))"
	expect_state "$CT" running
	read_state
	local token=$TOKEN
	wait_for 50 0.1 test -s "$ROOT/pty.out"

	runcr checkpoint --image-path ./image-no "$CT"
	[ "$status" -ne 0 ]
	grep -q "$(readlink "$ROOT/pty")" ./image-no/dump.log
	expect_state "$CT" running
	read_state
	expect_progress "$CT" "$COUNTER" "$token"

	runcr checkpoint --shell-job --image-path ./image "$CT"
	[ "$status" -eq 0 ]
	expect_state "$CT" gone
	expect_image ./image
	# Restoring needs CRIU to hand a new pty to the runtime
	# (orphan-pts-master); CRIU 4.1 crashes on that path with a
	# non-container tty, so only the dump is checked here.
}
