#!/usr/bin/env bats
# runcr migrate / runcr receive: a running container moved to another
# "host" (a network namespace with its own runc root and bundle directory)
# over exec:, committed only once the target runs it, rolled back on any
# failure before that.

# shellcheck disable=SC2153 # TOKEN, COUNTER, ... are set by helpers
load helpers

setup() {
	setup_common
	setup_bundle
	requires runcr netns
	export TMPDIR=$ROOT/tmp
	mkdir -p "$TMPDIR"
	# Host B: its own network namespace, runc root and bundle directory.
	HOSTB=rcr-$$-${BATS_TEST_NUMBER}b
	ip netns add "$HOSTB" || fail "ip netns add $HOSTB failed"
	NETNS+=("$HOSTB")
	ip -n "$HOSTB" link set lo up
	STATE_B=$ROOT/state-b
	BUNDLE_B=$ROOT/hostb/bundle
	mkdir -p "$STATE_B" "$ROOT/hostb"
	CT_B=$CT-b
}

# The helpers' teardown, run after host B's containers are gone (the
# stdio loggers receive starts exit with them).
eval "$(declare -f teardown | sed '1s/^teardown/teardown_helpers/')"

teardown() {
	local ct
	for ct in $("$RUNCR" --root "$STATE_B" list -q 2>/dev/null); do
		"$RUNCR" --root "$STATE_B" delete -f "$ct" >/dev/null 2>&1
	done
	teardown_helpers
}

# The exec: destination that runs receive in host B.
dest_b() {
	echo "exec:nsenter --net=/run/netns/$HOSTB $RUNCR --root $STATE_B receive --bundle $BUNDLE_B --id $CT_B"
}

# runcr migrate, logged, with its stderr in the output.
migrate() {
	runcr migrate "$@"
}

# runcr on host B.
runcr_b() {
	run env "${CRIU_ENV[@]}" timeout -k 5 "$RUNCR_TEST_TIMEOUT" "$RUNCR" --root "$STATE_B" "$@"
	log "\$ [host b] runcr --root $STATE_B $* (status=$status)"
	[ -n "$output" ] && log "$output"
	return 0
}

# Reads the workload's state on host B into COUNTER, TOKEN, MEM.
read_state_b() {
	local _
	for _ in $(seq 20); do
		runcr_b exec "$CT_B" cat /tmp/state
		if [ "$status" -eq 0 ] && [[ $output =~ ^[0-9]+\ [0-9a-f]+\ [A-Z]+$ ]]; then
			read -r COUNTER TOKEN MEM <<<"$output"
			return 0
		fi
		sleep 0.1
	done
	fail "can't read /tmp/state of $CT_B on host b"
}

# Waits until the workload on B counts past $1 with token $2, memory intact.
expect_progress_b() {
	local after=$1 token=$2 _
	for _ in $(seq 50); do
		read_state_b
		[ "$COUNTER" -gt "$after" ] && break
		sleep 0.2
	done
	log "state on b: counter $COUNTER (was $after), token $TOKEN (was $token), memory $MEM"
	[ "$COUNTER" -gt "$after" ] || fail "counter stuck at $COUNTER on b"
	[ "$TOKEN" = "$token" ] || fail "token changed on b: the workload restarted"
	[ "$MEM" = OK ] || fail "the workload on b found its memory $MEM"
}

# Host B holds nothing: no container, no bundle, no image or temp files.
expect_clean_b() {
	runcr_b list -q
	[ -z "$output" ] || fail "containers left on b: $output"
	[ ! -e "$BUNDLE_B" ] || fail "bundle left on b: $(ls -A "$BUNDLE_B")"
	[ -z "$(ls -A "$TMPDIR")" ] || fail "left in \$TMPDIR: $(ls -A "$TMPDIR")"
	! grep -q " $ROOT/hostb" /proc/self/mountinfo || fail "mounts left under $ROOT/hostb"
}

# Host B's pre-existing bundle (a copy of the source's) holds nothing
# new: no container, no stdio log; no image or temp files.
expect_clean_b_kept_bundle() {
	runcr_b list -q
	[ -z "$output" ] || fail "containers left on b: $output"
	[ -f "$BUNDLE_B/config.json" ] || fail "the bundle on b lost its config.json"
	[ ! -e "$BUNDLE_B/$CT_B.stdio.log" ] || fail "stdio log left on b"
	[ -z "$(ls -A "$TMPDIR")" ] || fail "left in \$TMPDIR: $(ls -A "$TMPDIR")"
	! grep -q " $ROOT/hostb" /proc/self/mountinfo || fail "mounts left under $ROOT/hostb"
}

# Gives host B a bundle holding the same rootfs as the source's: only the
# changes are sent, and the stream is mostly the dump.
same_bundle_b() {
	cp -a "$BUNDLE" "$BUNDLE_B"
}

# The source runs on: the same process, counting past $1, memory intact.
expect_source_intact() {
	expect_state "$CT" running
	expect_progress "$CT" "$1" "$2"
}

@test "migrate over exec: moves a running container to host b: the counter carries on, memory intact; the source is gone" {
	use_memory_workload
	start_workload
	local token=$TOKEN

	migrate --print-stats "$CT" "$(dest_b)"
	[ "$status" -eq 0 ] || fail "migrate failed"
	local json
	json=$(sed -n '/^{/,/^}/p' <<<"$output")
	jq -e '.downtime_seconds > 0 and .total_seconds >= .downtime_seconds and .bytes_sent > 0' <<<"$json" >/dev/null ||
		fail "no sensible stats: $json"
	jq -e '[.steps[].name] | index("handshake") != null and index("bundle") != null and index("dump") != null and index("restore") != null and index("commit") != null' <<<"$json" >/dev/null ||
		fail "steps missing: $json"
	read_state_file
	local at=$COUNTER

	expect_state "$CT" gone
	runcr_b state "$CT_B"
	[ "$(jq -r .status <<<"$output")" = running ] || fail "not running on b"
	expect_progress_b "$at" "$token"
	# The bundle was sent: config.json and the rootfs, the workload too.
	[ -f "$BUNDLE_B/config.json" ] && [ -f "$BUNDLE_B/rootfs/memtest.awk" ] || fail "bundle not sent"
	# Its stdio is a pipe into the log, never the transport.
	local pid
	pid=$(jq -r .target_pid <<<"$json")
	[[ $(readlink "/proc/$pid/fd/1") == pipe:* ]] || fail "stdout on b: $(readlink "/proc/$pid/fd/1")"
	[ -f "$BUNDLE_B/$CT_B.stdio.log" ] || fail "no stdio log on b"
	[ -z "$(ls -A "$TMPDIR")" ] || fail "left in \$TMPDIR: $(ls -A "$TMPDIR")"
}

@test "migrate: receiver refuses (id taken on b): source untouched, never frozen; nothing made on b" {
	use_memory_workload
	start_workload
	local token=$TOKEN at=$COUNTER
	mkdir -p "$STATE_B/$CT_B"

	migrate "$CT" "$(dest_b)"
	[ "$status" -ne 0 ] || fail "migrate succeeded"
	[[ $output == *'step handshake failed'* ]] || fail "error doesn't name the handshake"
	[[ $output == *"already exists"* ]] || fail "error doesn't say why"
	[[ $output == *"runs on, untouched"* ]] || fail "error doesn't say the source is untouched"
	rmdir "$STATE_B/$CT_B"
	expect_source_intact "$at" "$token"
	expect_clean_b
}

@test "migrate: transport breaks mid-dump (receiver's input cut): rolled back, source thawed with memory intact, b clean" {
	use_memory_workload
	start_workload
	local token=$TOKEN at=$COUNTER
	same_bundle_b
	# 400 KiB pass (dd bs=1: no buffering), then the receiver's input ends: inside the dump, which
	# --compress none makes megabytes long.
	local dest="exec:dd bs=1 count=409600 2>/dev/null | nsenter --net=/run/netns/$HOSTB $RUNCR --root $STATE_B receive --bundle $BUNDLE_B --id $CT_B"
	migrate --compress none "$CT" "$dest"
	[ "$status" -ne 0 ] || fail "migrate succeeded"
	[[ $output == *'step dump failed'* || $output == *'step restore failed'* ]] || fail "error doesn't name the dump or restore step"
	[[ $output == *"thawed and runs on where it stopped"* ]] || fail "error doesn't say the source was thawed"
	expect_source_intact "$at" "$token"
	expect_clean_b_kept_bundle
	# The rootfs changes were sent: the pre-existing bundle now has the
	# source's latest /tmp/state.
	[ -f "$BUNDLE_B/rootfs/tmp/state" ] || fail "rootfs changes not sent"
}

@test "migrate: restore fails on b (import over --import-limit): rolled back, source thawed with memory intact, b clean" {
	use_memory_workload
	start_workload
	local token=$TOKEN at=$COUNTER
	migrate --compress none "$CT" "exec:nsenter --net=/run/netns/$HOSTB $RUNCR --root $STATE_B receive --import-limit 1M --bundle $BUNDLE_B --id $CT_B"
	[ "$status" -ne 0 ] || fail "migrate succeeded"
	[[ $output == *'step restore failed'* ]] || fail "error doesn't name the restore step"
	[[ $output == *"thawed and runs on where it stopped"* ]] || fail "error doesn't say the source was thawed"
	expect_source_intact "$at" "$token"
	expect_clean_b
}

@test "migrate: SIGTERM to migrate while the container is frozen: rolled back, source thawed with memory intact, b clean" {
	use_memory_workload
	start_workload
	local token=$TOKEN at=$COUNTER
	same_bundle_b
	# A transport that stalls inside the dump, so that the signal lands
	# while the source is frozen.
	local dest="exec:{ dd bs=1 count=409600 2>/dev/null; sleep 20; cat; } | nsenter --net=/run/netns/$HOSTB $RUNCR --root $STATE_B receive --bundle $BUNDLE_B --id $CT_B"
	setsid env "${CRIU_ENV[@]}" "$RUNCR" --root "$STATE" migrate --compress none "$CT" "$dest" >"$ROOT/mig.out" 2>&1 3>&- &
	local mpid=$! _
	BG_PIDS+=("$mpid")
	for _ in $(seq 50); do
		grep -q "freeze done" "$ROOT/mig.out" && break
		sleep 0.1
	done
	sleep 1
	expect_state "$CT" paused
	kill -TERM "$mpid"
	local rc=0
	wait "$mpid" || rc=$?
	log "migrate after SIGTERM: status $rc: $(cat "$ROOT/mig.out")"
	[ "$rc" -ne 0 ] || fail "migrate succeeded despite SIGTERM"
	grep -q "rolled back: container .*$CT.* was thawed and runs on" "$ROOT/mig.out" || fail "no rollback reported"
	expect_source_intact "$at" "$token"
	expect_clean_b_kept_bundle
}

@test "migrate: --lazy-pages and --pre-dump-rounds are checked on this host before the container is touched" {
	use_memory_workload
	start_workload
	local token=$TOKEN at=$COUNTER
	if ! probe criu_lazy_pages; then
		migrate --lazy-pages "$CT" "$(dest_b)"
		[ "$status" -ne 0 ] || fail "--lazy-pages accepted where lazy pages fail"
		[[ $output == *"--lazy-pages"* && $output == *"not touched"* ]] || fail "no reason given"
		expect_source_intact "$at" "$token"
		expect_clean_b
	else
		log "lazy pages work here: $PROBE_RESULT"
	fi
	if ! criu check --feature mem_dirty_track >/dev/null 2>&1; then
		read_state
		at=$COUNTER
		migrate --pre-dump-rounds 2 "$CT" "$(dest_b)"
		[ "$status" -eq 0 ] || fail "migrate --pre-dump-rounds failed"
		[[ $output == *"--pre-dump-rounds 2 skipped: this kernel does not track dirty memory"* ]] || fail "skip not said"
		expect_progress_b "$at" "$token"
	fi
}

# ---------------------------------------------------------------- ssh://

# Host a: a network namespace linked to host b by a veth pair (a
# 192.168.78.1, b 192.168.78.2); runcr migrate runs there. Host b runs
# sshd on 192.168.78.2:2222 with its own host key, root's key of the
# test's making in authorized_keys and nothing of the system's sshd or ssh
# configuration. Sets HOSTA, SSH_DIR.
setup_ssh_b() {
	HOSTA=rcr-$$-${BATS_TEST_NUMBER}a
	SSH_DIR=$ROOT/ssh
	ip netns add "$HOSTA" || fail "ip netns add $HOSTA failed"
	NETNS+=("$HOSTA")
	ip -n "$HOSTA" link set lo up
	ip link add "rs$$a" netns "$HOSTA" type veth peer name "rs$$b" netns "$HOSTB" ||
		fail "can't create a veth pair between hosts a and b"
	ip -n "$HOSTA" addr add 192.168.78.1/24 dev "rs$$a"
	ip -n "$HOSTA" link set "rs$$a" up
	ip -n "$HOSTB" addr add 192.168.78.2/24 dev "rs$$b"
	ip -n "$HOSTB" link set "rs$$b" up
	mkdir -p "$SSH_DIR" /run/sshd
	chmod 700 "$SSH_DIR"
	ssh-keygen -q -t ed25519 -N '' -f "$SSH_DIR/host_key" || fail "ssh-keygen (host key) failed"
	ssh-keygen -q -t ed25519 -N '' -f "$SSH_DIR/id" || fail "ssh-keygen (client key) failed"
	cp "$SSH_DIR/id.pub" "$SSH_DIR/authorized_keys"
	cat >"$SSH_DIR/sshd_config" <<-CONF
		ListenAddress 192.168.78.2:2222
		HostKey $SSH_DIR/host_key
		AuthorizedKeysFile $SSH_DIR/authorized_keys
		PidFile $SSH_DIR/sshd.pid
		PermitRootLogin prohibit-password
		PubkeyAuthentication yes
		PasswordAuthentication no
		KbdInteractiveAuthentication no
		UsePAM no
		StrictModes no
	CONF
	# sshd -D stays in the foreground: teardown kills it (BG_PIDS).
	background nsenter --net="/run/netns/$HOSTB" "$(command -v sshd)" -D -e -f "$SSH_DIR/sshd_config"
	wait_for 50 0.1 eval "nsenter --net=/run/netns/$HOSTB ss -Hltn 'sport = :2222' | grep -q ." ||
		fail "sshd did not listen on host b: $(cat "$ROOT/bg.out")"
}

@test "migrate over ssh:// to a real sshd on host b: the container moves, memory intact" {
	requires host_cmd sshd host_cmd ssh host_cmd ssh-keygen
	setup_ssh_b
	use_memory_workload
	start_workload
	local token=$TOKEN at

	run env "${CRIU_ENV[@]}" timeout -k 5 "$RUNCR_TEST_TIMEOUT" nsenter --net="/run/netns/$HOSTA" \
		"$RUNCR" --root "$STATE" migrate --print-stats --new-id "$CT_B" \
		--remote-runcr "$RUNCR" --remote-root "$STATE_B" --remote-bundle "$BUNDLE_B" \
		--ssh-option -F --ssh-option /dev/null --ssh-option -i --ssh-option "$SSH_DIR/id" \
		--ssh-option -o --ssh-option StrictHostKeyChecking=no \
		--ssh-option -o --ssh-option UserKnownHostsFile=/dev/null \
		--ssh-option -o --ssh-option LogLevel=ERROR \
		"$CT" ssh://root@192.168.78.2:2222
	log "\$ [host a] runcr migrate ... $CT ssh://root@192.168.78.2:2222 (status=$status)"
	log "$output"
	[ "$status" -eq 0 ] || fail "migrate over ssh:// failed"
	local json
	json=$(sed -n '/^{/,/^}/p' <<<"$output")
	[ "$(jq -r .dest,.target_id <<<"$json" | paste -sd" ")" = "ssh://root@192.168.78.2:2222 $CT_B" ] || fail "wrong dest or id in the stats: $json"
	read_state_file
	at=$COUNTER

	expect_state "$CT" gone
	runcr_b state "$CT_B"
	[ "$(jq -r .status <<<"$output")" = running ] || fail "not running on b"
	expect_progress_b "$at" "$token"
	[ -f "$BUNDLE_B/config.json" ] && [ -f "$BUNDLE_B/rootfs/memtest.awk" ] || fail "bundle not sent"
	[ -f "$BUNDLE_B/$CT_B.stdio.log" ] || fail "no stdio log on b"
	# sshd saw root log in with the test's key.
	grep -q "Accepted publickey for root" "$ROOT/bg.out" || fail "sshd logged no key login: $(cat "$ROOT/bg.out")"
}

# ---------------------------------------------------------------- network

# Hosts a and b on a LAN: a bridge in the client's namespace ($CLIENT,
# 192.168.77.1), host a at .2, host b at .3. On each host the container's
# network namespace ($CTNS_A, $CTNS_B, joined by path in config.json) has
# 10.99.0.2/24 on a veth to the host's 10.99.0.1, and the host routes. The
# client reaches 10.99.0.2 through host a until the test moves its route
# to host b. Every namespace is the test's own.
setup_lan() {
	HOSTA=rcr-$$-${BATS_TEST_NUMBER}a
	CLIENT=rcr-$$-${BATS_TEST_NUMBER}c
	CTNS_A=rcr-$$-${BATS_TEST_NUMBER}ka
	CTNS_B=rcr-$$-${BATS_TEST_NUMBER}kb
	local ns h host ctns n=2
	for ns in "$HOSTA" "$CLIENT" "$CTNS_A" "$CTNS_B"; do
		ip netns add "$ns" || fail "ip netns add $ns failed"
		NETNS+=("$ns")
		ip -n "$ns" link set lo up
	done
	ip -n "$CLIENT" link add br0 type bridge
	ip -n "$CLIENT" addr add 192.168.77.1/24 dev br0
	ip -n "$CLIENT" link set br0 up
	for h in a b; do
		host=$HOSTA ctns=$CTNS_A
		[ "$h" = b ] && host=$HOSTB ctns=$CTNS_B
		ip link add "rm$$$h" netns "$host" type veth peer name "rm$$${h}p" netns "$CLIENT" ||
			fail "can't create the LAN veth of host $h"
		ip -n "$CLIENT" link set "rm$$${h}p" master br0 up
		ip -n "$host" addr add "192.168.77.$n/24" dev "rm$$$h"
		ip -n "$host" link set "rm$$$h" up
		ip link add "rk$$$h" netns "$host" type veth peer name eth0 netns "$ctns" ||
			fail "can't create the container veth of host $h"
		ip -n "$host" addr add 10.99.0.1/24 dev "rk$$$h"
		ip -n "$host" link set "rk$$$h" up
		ip -n "$ctns" addr add 10.99.0.2/24 dev eth0
		ip -n "$ctns" link set eth0 up
		ip -n "$ctns" route add default via 10.99.0.1
		nsenter --net="/run/netns/$host" sysctl -qw net.ipv4.ip_forward=1
		n=$((n + 1))
	done
	ip -n "$CLIENT" route add 10.99.0.2/32 via 192.168.77.2
}

# Points the container of bundle $1 at network namespace $2.
use_netns() {
	local cfg=$1/config.json
	# shellcheck disable=SC2016 # a jq variable
	jq --arg p "/run/netns/$2" '(.linux.namespaces[] | select(.type == "network")).path = $p' "$cfg" >"$cfg.new" &&
		mv "$cfg.new" "$cfg"
}

last_number() {
	tail -1 "$1" 2>/dev/null | tr -dc 0-9
}

number_above() {
	local n
	n=$(last_number "$1")
	[ -n "$n" ] && [ "$n" -gt "$2" ]
}

# The client's established connections to port 5000: "local peer" lines.
client_conns() {
	nsenter --net="/run/netns/$CLIENT" ss -Htn state established 'dport = :5000' | awk '{print $3, $4}'
}

@test "migrate --tcp-established: a client's connection to the container keeps talking across the move to host b" {
	requires criu_inet host_cmd iptables
	setup_lan
	use_netns "$BUNDLE" "$CTNS_A"
	# An echo server beside the counter loop.
	use_counter_workload "nc -l -p 5000 -e cat &
"
	start_workload
	local token=$TOKEN echoes=$ROOT/echoes conn at
	# Host b holds the same rootfs and its own config.json: the container
	# joins host b's namespace there.
	same_bundle_b
	use_netns "$BUNDLE_B" "$CTNS_B"
	# The client, in a third namespace: one connection (bash's /dev/tcp
	# never reconnects); each number must come back before the next goes.
	# shellcheck disable=SC2016 # for the client's shell
	background nsenter --net="/run/netns/$CLIENT" bash -c 'exec 3<>/dev/tcp/10.99.0.2/5000 || exit 1
		i=0
		while :; do
			i=$((i + 1))
			echo "$i" >&3
			read -r -t 60 line <&3 || { echo "client: no echo of $i" >&2; exit 1; }
			[ "$line" = "$i" ] || { echo "client: echo $line for $i" >&2; exit 1; }
			echo "$i" >>"$1"
			sleep 0.05
		done' client "$echoes"
	local client=${BG_PIDS[-1]}
	wait_for 100 0.1 number_above "$echoes" 5 || fail "the client gets no echoes"
	conn=$(client_conns)
	[ -n "$conn" ] || fail "no established connection"

	migrate --tcp-established "$CT" "$(dest_b)"
	[ "$status" -eq 0 ] || fail "migrate failed"
	[[ $output == *"network-lock done"* ]] || fail "the source's network was not locked"
	[[ $output == *"as $CT_B "* ]] || fail "the target id reported is not receive's --id"
	[[ $output == *"$CTNS_A outlives the container and still drops"* ]] || fail "the kept lock is not said"
	at=$(last_number "$echoes")
	expect_state "$CT" gone
	# The source's namespace answers nothing: no reset reaches the client.
	nsenter --net="/run/netns/$CTNS_A" iptables -S INPUT | grep -q -- '-j DROP' || fail "the source's namespace is not locked"
	# The network moves: the client's route now leads to host b.
	ip -n "$CLIENT" route replace 10.99.0.2/32 via 192.168.77.3

	wait_for 300 0.1 number_above "$echoes" "$((at + 20))" ||
		fail "the client's echoes stopped at $(last_number "$echoes") (migrated at $at): $(cat "$ROOT/bg.out")"
	kill -0 "$client" || fail "the client died: $(cat "$ROOT/bg.out")"
	# The same connection: same ports on the client, now served on b.
	[ "$(client_conns)" = "$conn" ] || fail "the connection changed: $conn, now $(client_conns)"
	nsenter --net="/run/netns/$CTNS_B" ss -Htn state established 'sport = :5000' | grep -q . ||
		fail "no established connection in host b's container namespace"
	# Nothing lost, nothing repeated.
	awk 'NR > 1 && $1 != prev + 1 { print "line " NR ": " $1 " after " prev; bad = 1 } { prev = $1 } END { exit bad }' "$echoes" ||
		fail "the echoes are not contiguous"
	log "echoes: up to $(last_number "$echoes"), migrated at $at, connection $conn"
	read_state_b
	expect_progress_b "$COUNTER" "$token"
}
