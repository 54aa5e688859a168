#!/usr/bin/env bats
# runcr check, and the CRIU start-up work runcr saves: the kernel feature
# cache where /run is not a tmpfs, and the nftables network lock.

# shellcheck disable=SC2153 # TOKEN, COUNTER, ... are set by helpers
load helpers

run_is_tmpfs() {
	[ "$(stat -f -c %T /run)" = tmpfs ]
}

@test "check --format json reports the network lock, the cgroup mode and seccomp as this host has them" {
	requires runcr
	runcr check --format json
	[ "$status" -eq 0 ]
	local json=$output want
	jq -e . <<<"$json" >/dev/null || fail "not JSON: $json"
	jq -e '[.cgroup.meaning, .network_lock.meaning, .seccomp.meaning] | all(type == "string" and length > 0)' <<<"$json" >/dev/null ||
		fail "a meaning is missing: $json"

	# cgroup mode, as the host's mounts say.
	if [ "$(stat -f -c %T /sys/fs/cgroup)" = cgroup2fs ]; then
		want=unified
	elif [ -d /sys/fs/cgroup/unified ]; then
		want=hybrid
	else
		want=v1
	fi
	[ "$(jq -r .cgroup.mode <<<"$json")" = "$want" ] || fail "cgroup.mode is not $want"

	# Each lock tool as it works when tried directly.
	want=false
	iptables -w -n -L INPUT >/dev/null 2>&1 && command -v iptables-restore >/dev/null && want=true
	[ "$(jq -r .network_lock.iptables <<<"$json")" = "$want" ] || fail "network_lock.iptables is not $want"
	want=false
	criu check --feature network_lock_nftables >/dev/null 2>&1 && want=true
	[ "$(jq -r .network_lock.nftables <<<"$json")" = "$want" ] || fail "network_lock.nftables is not $want"
	case $(jq -r '[.network_lock.nftables, .network_lock.iptables, .network_lock.backend] | join(" ")' <<<"$json") in
	"true "*" nftables" | "false true iptables" | "false false ") ;;
	*) fail "network_lock.backend doesn't follow from what works" ;;
	esac

	want=false
	criu check --feature seccomp_filters >/dev/null 2>&1 && want=true
	[ "$(jq -r .seccomp.criu_dumps_filters <<<"$json")" = "$want" ] || fail "seccomp.criu_dumps_filters is not $want"
	want=false
	[ -f /proc/sys/kernel/seccomp/actions_avail ] && want=true
	[ "$(jq -r .seccomp.kernel <<<"$json")" = "$want" ] || fail "seccomp.kernel is not $want"

	want=runcr
	run_is_tmpfs && want=criu
	[ "$(jq -r .kernel_feature_cache <<<"$json")" = "$want" ] || fail "kernel_feature_cache is not $want"
}

@test "where /run is not a tmpfs, the CRIU runcr starts loads runcr's kernel feature cache; no other CRIU sees it; one made for another boot or criu is never loaded" {
	requires runcr
	run_is_tmpfs && skip "/run is a tmpfs here: CRIU keeps its own cache"
	local log=$ROOT/criu.log key
	runcr check
	[ "$status" -eq 0 ]
	[ -s /run/runcr/kdat/criu.kdat ] || fail "runcr made no cache"
	# The cache is runcr's own: the host's /run/criu.kdat is no mount, and
	# a CRIU started by anyone else (runc's) probes the kernel as before.
	! mountpoint -q /run/criu.kdat || fail "runcr's cache is mounted for every CRIU on the host"
	criu check --feature timens -v4 -o "$log" >/dev/null 2>&1
	! grep -q 'Loaded kdat cache' "$log" || fail "a CRIU outside runcr loaded runcr's cache"

	# A checkpoint and a restore under runcr start CRIU from the cache.
	use_memory_workload
	start_workload
	local token=$TOKEN
	runcr checkpoint --image-path ./image "$CT"
	[ "$status" -eq 0 ]
	grep -q 'Loaded kdat cache' ./image/dump.log || fail "the dump probed the kernel"
	! mountpoint -q /run/criu.kdat || fail "the checkpoint left the cache mounted on the host"
	read_state_file
	restore_detached "$CT" --image-path ./image
	grep -q 'Loaded kdat cache' ./image/restore.log || fail "the restore probed the kernel"
	expect_progress "$CT" "$COUNTER" "$token"

	# A cache made in another boot or for another criu (its key differs) is
	# made again before CRIU sees it: here the file is garbage CRIU would
	# reject as stale.
	key=$(cat /run/runcr/kdat/key)
	echo "another-boot /usr/sbin/criu 1 1" >/run/runcr/kdat/key
	# shellcheck disable=SC2094 # stat runs before the redirection truncates it
	head -c "$(stat -c %s /run/runcr/kdat/criu.kdat)" /dev/urandom >/run/runcr/kdat/criu.kdat
	runcr checkpoint --image-path ./image2 "$CT"
	[ "$status" -eq 0 ]
	grep -q 'Loaded kdat cache' ./image2/dump.log || fail "the dump did not load a fresh cache"
	! grep -q 'Stale' ./image2/dump.log || fail "CRIU was shown the other boot's cache"
	[ "$(cat /run/runcr/kdat/key)" = "$key" ] || fail "the cache was not made again for this boot and criu"
}

@test "checkpoint locks a container's own network namespace with nftables where it works, and the restore carries on" {
	requires runcr criu_feature network_lock_nftables
	[ -z "${CRIU_CONFIG_FILE:-}" ] || skip "CRIU_CONFIG_FILE is set: runcr leaves the lock to it"
	[ ! -e /etc/criu/default.conf ] || skip "/etc/criu/default.conf may choose the lock"
	jq -e '.linux.namespaces | any(.type == "network" and (.path // "") == "")' "$BUNDLE/config.json" >/dev/null ||
		fail "the test bundle has no network namespace of its own"
	use_memory_workload
	start_workload
	local token=$TOKEN
	runcr checkpoint --image-path ./image "$CT"
	[ "$status" -eq 0 ]
	# A dump's configuration may add the cgroup yard to the lock.
	grep -Eq 'Parsing config file /run/runcr/criu-network-lock-nftables(-cgroup-yard)?\.conf' ./image/dump.log ||
		fail "CRIU was not told to lock with nftables: $(head -3 ./image/dump.log)"
	# The restore locks with what the dump recorded, so it has to work
	# with nftables too.
	read_state_file
	restore_detached "$CT" --image-path ./image
	expect_progress "$CT" "$COUNTER" "$token"

	# A container in the host's network namespace needs no lock: CRIU
	# keeps its default.
	local ct2=$CT-host
	runcr delete --force "$CT"
	update_config '.linux.namespaces |= map(select(.type != "network"))'
	start_workload "$ct2"
	runcr checkpoint --leave-running --image-path ./image2 "$ct2"
	[ "$status" -eq 0 ]
	! grep -q 'criu-network-lock-nftables' ./image2/dump.log || fail "nftables chosen for the host's network"
}

@test "check warns of CVE-2026-119614 exactly when the installed CRIU is older than 4.3.1" {
	requires runcr
	runcr check --format json
	[ "$status" -eq 0 ]
	local v advisories
	v=$(jq -r .criu_version <<<"$output")
	advisories=$(jq -c '[.advisories[]? | select(.id == "CVE-2026-119614")] | length' <<<"$output")
	if [ "$v" -lt 40301 ]; then
		[ "$advisories" -eq 1 ] || fail "CRIU $v lacks the fix, and check does not say so"
		runcr check
		[[ $output == *"warning:"*"CVE-2026-119614"*"4.3.1"* ]] || fail "the text report does not warn"
	else
		[ "$advisories" -eq 0 ] || fail "CRIU $v has the fix, yet check warns"
	fi
}
