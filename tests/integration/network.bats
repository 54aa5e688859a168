#!/usr/bin/env bats
# Sockets and network namespaces: connections that survive checkpoint and
# restore, and where the restored container's network comes from.

# shellcheck disable=SC2153 # TOKEN, COUNTER, ... are set by helpers
load helpers

# True when the numbers in file $1 count up by one from its first line
# (nothing lost, nothing repeated, no restart from 1).
contiguous() {
	awk 'NR > 1 && $1 != prev + 1 { print "line " NR ": " $1 " after " prev; bad = 1 }
		{ prev = $1 } END { exit bad }' "$1"
}

last_number() {
	tail -1 "$1" 2>/dev/null | tr -dc 0-9
}

number_above() {
	local n
	n=$(last_number "$1")
	[ -n "$n" ] && [ "$n" -gt "$2" ]
}

@test "checkpoint/restore --ext-unix-sk: a datagram connection to a socket outside the container survives" {
	requires netns host_cmd socat
	install_host_binary socat
	setup_netns
	# The peer lives outside the container but in its network namespace
	# (CRIU finds unix sockets per namespace), bound to a path that means
	# the same inside the container, where CRIU reconnects on restore.
	background ip netns exec "$NS" chroot "$BUNDLE/rootfs" \
		socat -u UNIX-RECV:/run/dg.sock OPEN:/run/dg.out,creat,append
	wait_for 50 0.1 test -S "$BUNDLE/rootfs/run/dg.sock"
	set_args sh -c "( $COUNTER_LOOP ) | socat -u - UNIX-CLIENT:/run/dg.sock,type=2"
	start_workload
	local token=$TOKEN out=$BUNDLE/rootfs/run/dg.out at
	wait_for 50 0.1 number_above "$out" 3

	runcr checkpoint --image-path ./image-no "$CT"
	[ "$status" -ne 0 ]
	grep -q 'ext-unix-sk' ./image-no/dump.log
	expect_state "$CT" running

	runcr checkpoint --ext-unix-sk --image-path ./image "$CT"
	[ "$status" -eq 0 ]
	expect_state "$CT" gone
	at=$(last_number "$out")

	restore_detached "$CT" --ext-unix-sk --image-path ./image
	wait_for 50 0.1 number_above "$out" "$((at + 5))"
	log "the outside listener got up to $(last_number "$out") (dumped at $at)"
	contiguous "$out"
	expect_progress "$CT" "$at" "$token"
}

@test "checkpoint/restore --tcp-established: an established TCP connection survives and keeps talking" {
	requires netns criu_inet
	# Our own namespace, so loopback outlives the container and is up.
	setup_netns
	set_args sh -c "sleep 100000 | nc -l -p 5000 >/tmp/recv &
sleep 0.5
( $COUNTER_LOOP ) | nc 127.0.0.1 5000"
	start_workload
	local token=$TOKEN recv=$BUNDLE/rootfs/tmp/recv at conn
	wait_for 50 0.1 number_above "$recv" 3
	runcr exec "$CT" netstat -tn
	conn=$(grep ':5000 *ESTABLISHED' <<<"$output" | awk '{print $4, $5}' | sort)
	[ -n "$conn" ]

	runcr checkpoint --image-path ./image-no "$CT"
	[ "$status" -ne 0 ]
	grep -q 'tcp-established' ./image-no/dump.log
	expect_state "$CT" running

	runcr checkpoint --tcp-established --image-path ./image "$CT"
	[ "$status" -eq 0 ]
	expect_state "$CT" gone
	at=$(last_number "$recv")

	restore_detached "$CT" --tcp-established --image-path ./image
	wait_for 50 0.1 number_above "$recv" "$((at + 5))"
	contiguous "$recv"
	# The same connection (same ports), not a new one.
	runcr exec "$CT" netstat -tn
	[ "$(grep ':5000 *ESTABLISHED' <<<"$output" | awk '{print $4, $5}' | sort)" = "$conn" ]
	expect_progress "$CT" "$at" "$token"
}

@test "restore --tcp-close: the established connection comes back closed, the rest of the container carries on" {
	requires netns criu_inet
	setup_netns
	# The connection is a side job (a talker feeding a listener); the
	# counter loop is what must carry on.
	use_counter_workload "sleep 100000 | nc -l -p 5000 >/tmp/recv &
sleep 0.5
(i=0; while :; do i=\$((i + 1)); echo \$i; sleep 0.1; done) | nc 127.0.0.1 5000 &
"
	start_workload
	local token=$TOKEN recv=$BUNDLE/rootfs/tmp/recv at
	wait_for 50 0.1 number_above "$recv" 3
	ip netns exec "$NS" ss -Htn state established '( sport = :5000 or dport = :5000 )' | grep -q . ||
		fail "no established connection to start with"

	runcr checkpoint --tcp-established --image-path ./image "$CT"
	[ "$status" -eq 0 ]
	read_state_file
	at=$(last_number "$recv")

	restore_detached "$CT" --tcp-close --image-path ./image
	expect_progress "$CT" "$COUNTER" "$token"
	# Closed on both ends: no established socket is left, the talker's nc
	# got an error and exited, and the listener got nothing more.
	run ip netns exec "$NS" ss -Htn state established '( sport = :5000 or dport = :5000 )'
	[ -z "$output" ] || fail "still established after --tcp-close: $output"
	wait_for 50 0.1 eval "! runcr exec $CT ps -o args | grep -q '^nc 127.0.0.1'"
	sleep 0.5
	[ "$(last_number "$recv")" -le "$((at + 1))" ] || fail "data still flows after --tcp-close"
}

@test "checkpoint --tcp-skip-in-flight: a listener with a connection not yet accepted is dumped and serves again" {
	requires netns criu_inet
	setup_netns
	use_counter_workload "nc -ll -p 5000 -e sh -c 'cat >>/tmp/recv' &
"
	start_workload
	local token=$TOKEN
	wait_for 50 0.1 eval "ip netns exec $NS ss -Hltn 'sport = :5000' | grep -q ."

	# With the container frozen the kernel completes the handshake, but
	# nobody accepts: the connection is in flight at dump time.
	runcr pause "$CT"
	[ "$status" -eq 0 ]
	background ip netns exec "$NS" sh -c 'sleep 1000 | exec busybox nc 127.0.0.1 5000'
	wait_for 50 0.1 eval "ip netns exec $NS ss -Htn state established 'dport = :5000' | grep -q ."

	runcr checkpoint --image-path ./image-no "$CT"
	[ "$status" -ne 0 ]
	grep -qi 'in-flight' ./image-no/dump.log
	expect_state "$CT" paused

	runcr checkpoint --tcp-skip-in-flight --image-path ./image "$CT"
	[ "$status" -eq 0 ]
	grep -q 'Skipping in-flight' ./image/dump.log
	expect_state "$CT" gone

	restore_detached_any "$CT" --image-path ./image
	ip netns exec "$NS" sh -c 'echo after-restore | busybox nc 127.0.0.1 5000'
	wait_for 50 0.1 grep -q after-restore "$BUNDLE/rootfs/tmp/recv"
	expect_progress "$CT" 0 "$token"
}

@test "checkpoint/restore --empty-ns network: restored into the namespace given, its veth and address intact" {
	requires netns
	setup_netns
	setup_veth
	use_counter_workload
	start_workload
	local token=$TOKEN ino pid at
	ino=$(netns_inode "$NS_PATH")
	ip netns exec "$PEER_NS" busybox ping -c1 -W2 10.77.0.2

	runcr checkpoint --empty-ns network --image-path ./image "$CT"
	[ "$status" -eq 0 ]
	expect_state "$CT" gone
	read_state_file
	at=$COUNTER

	restore_detached "$CT" --empty-ns network --image-path ./image
	pid=$(container_pid "$CT")
	[ "$(stat -L -c %i "/proc/$pid/ns/net")" = "$ino" ]
	runcr exec "$CT" ip addr show dev "$VETH_CT"
	[[ "$output" == *"10.77.0.2/24"* ]]
	ip netns exec "$PEER_NS" busybox ping -c1 -W2 10.77.0.2
	expect_progress "$CT" "$at" "$token"
}

@test "checkpoint/restore --empty-ns network: a private network namespace is recreated empty" {
	use_counter_workload
	start_workload
	local token=$TOKEN ino pid at oldns
	runcr exec --cap CAP_NET_ADMIN "$CT" ip addr add 10.255.255.1/32 dev lo
	[ "$status" -eq 0 ]
	runcr exec "$CT" ip addr show dev lo
	[[ "$output" == *10.255.255.1* ]]
	ino=$(stat -L -c %i "/proc/$(container_pid "$CT")/ns/net")
	# Hold the old namespace: the kernel reuses a freed namespace's inode
	# number, which would make the new one look like the old.
	exec {oldns}<"/proc/$(container_pid "$CT")/ns/net"

	runcr checkpoint --empty-ns network --image-path ./image "$CT"
	[ "$status" -eq 0 ]
	read_state_file
	at=$COUNTER

	restore_detached "$CT" --empty-ns network --image-path ./image
	pid=$(container_pid "$CT")
	[ "$(stat -L -c %i "/proc/$pid/ns/net")" != "$ino" ]
	runcr exec "$CT" ip addr show dev lo
	[ "$status" -eq 0 ]
	[[ "$output" != *10.255.255.1* ]]
	exec {oldns}<&-
	expect_progress "$CT" "$at" "$token"
}

@test "checkpoint/restore --empty-ns with a namespace other than network are refused" {
	use_counter_workload
	start_workload

	runcr checkpoint --empty-ns pid --image-path ./image "$CT"
	[ "$status" -ne 0 ]
	[[ "$output" == *pid*'not supported'* ]]
	[ ! -e ./image/inventory.img ]
	expect_state "$CT" running

	runcr checkpoint --image-path ./image "$CT"
	[ "$status" -eq 0 ]
	runcr restore -d --empty-ns ipc --image-path ./image "$CT"
	[ "$status" -ne 0 ]
	[[ "$output" == *ipc*'not supported'* ]]
	expect_state "$CT" gone
}
