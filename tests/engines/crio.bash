#!/bin/bash
# CRI-O-specific helpers: CRI-O v1.34.0 (built by tests/setup/install-crio.sh)
# started privately for the test file: own config, storage root and runroot,
# sockets, exits/attach/namespace dirs, pod log dir and runtime roots under
# the run's temp dir. Driven with crictl 1.37.0. runcr (the logging wrapper)
# is CRI-O's default runtime; "runc" is runc v1.4.4 through the same wrapper,
# the reference. Pods use the host network (no CNI) and a pid namespace per
# container, so with drop_infra_ctr no infra container (whose
# oom_score_adj -998 these machines refuse) and no pause image are needed.
# Debian's conmon monitors the containers.

# shellcheck disable=SC2154 # status and output are set by bats' run
CRIO_VERSION=${CRIO_VERSION:-1.34.0}
CRICTL_VERSION=${CRICTL_VERSION:-1.37.0}
ENGINES_PREFIX=${ENGINES_PREFIX:-/usr/local/libexec/runcr-engines}
CRIO_BIN=$ENGINES_PREFIX/crio-v$CRIO_VERSION/crio
CRIO_PINNS=$ENGINES_PREFIX/crio-v$CRIO_VERSION/pinns
CRICTL_BIN=$ENGINES_PREFIX/crictl-$CRICTL_VERSION/crictl
CRIO_DIR=${CRIO_DIR:-$ENGINES_TMP/crio}
CRIO_SOCK=$CRIO_DIR/crio.sock
# With a config file of its own: no warning about /etc/crictl.yaml mixed into
# the output.
CRICTL=("$CRICTL_BIN" --config "$CRIO_DIR/crictl.yaml")

requires_crio() {
	[ -x "$CRIO_BIN" ] && [ -x "$CRIO_PINNS" ] || skip "needs $CRIO_BIN (bash tests/setup/install-engines.sh)"
	[ -x "$CRICTL_BIN" ] || skip "needs $CRICTL_BIN (bash tests/setup/install-engines.sh)"
	requires_cmd conmon skopeo jq
}

# Writes crio.conf (runtime handlers runcr, the default, and runc).
crio_config() {
	local d=$CRIO_DIR
	mkdir -p "$d"/{root,runroot,logs,exits,attach,ns,cni/bin,cni/conf,conf.d,runcr-root,runc-root}
	printf 'runtime-endpoint: unix://%s\nimage-endpoint: unix://%s\ntimeout: 60\n' "$CRIO_SOCK" "$CRIO_SOCK" >"$d/crictl.yaml"
	sed -e "s|@LOG@|$ARGV_LOG|g" -e "s|@RUNCR@|/usr/local/sbin/runc|g" -e "s|@ENSURE_PATH@||g" \
		"$ENGINES_DIR/runtime-wrapper.sh" >"$ENGINES_BIN/runcref"
	chmod 0755 "$ENGINES_BIN/runcref"
	cat >"$d/crio.conf" <<EOF
[crio]
root = "$d/root"
runroot = "$d/runroot"
storage_driver = "overlay"
log_dir = "$d/logs"
version_file = "$d/version"
version_file_persist = "$d/version-persist"
clean_shutdown_file = "$d/clean.shutdown"

[crio.api]
listen = "$CRIO_SOCK"
stream_address = "127.0.0.1"
stream_port = "0"

[crio.runtime]
default_runtime = "${CRIO_DEFAULT_RUNTIME:-runcr}"
cgroup_manager = "cgroupfs"
drop_infra_ctr = true
enable_criu_support = true
pinns_path = "$CRIO_PINNS"
namespaces_dir = "$d/ns"
container_exits_dir = "$d/exits"
container_attach_socket_dir = "$d/attach"
apparmor_profile = "unconfined"
selinux = false
irqbalance_config_file = "$d/irqbalance"
irqbalance_config_restore_file = "disable"
hooks_dir = []
cdi_spec_dirs = []
default_ulimits = ["nofile=1024:1024"]
decryption_keys_path = "$d/keys"

[crio.runtime.runtimes.runcr]
runtime_path = "$ENGINES_BIN/runcr"
runtime_type = "oci"
runtime_root = "$d/runcr-root"
monitor_path = "/usr/bin/conmon"
monitor_cgroup = "pod"
monitor_env = ["PATH=$PATH"]

[crio.runtime.runtimes.runc]
runtime_path = "$ENGINES_BIN/runcref"
runtime_type = "oci"
runtime_root = "$d/runc-root"
monitor_path = "/usr/bin/conmon"
monitor_cgroup = "pod"
monitor_env = ["PATH=$PATH"]

[crio.image]
# Never pulled: no infra container (drop_infra_ctr, pid per container).
pause_image = "$IMAGE_REF"
signature_policy_dir = "$d/policies"

[crio.network]
network_dir = "$d/cni/conf"
plugin_dirs = ["$d/cni/bin"]

[crio.metrics]
enable_metrics = false

[crio.nri]
enable_nri = false
EOF
}

# Starts CRI-O and imports the test image into its storage with skopeo.
crio_start() {
	engines_setup_bin
	crio_config
	engines_image_tar
	# Into CRI-O's private storage before it starts (skopeo and CRI-O share
	# containers/storage; the store is locked while in use).
	skopeo copy -q "docker-archive:$IMAGE_TAR" \
		"containers-storage:[overlay@$CRIO_DIR/root+$CRIO_DIR/runroot]$IMAGE_REF" >&2
	"$CRIO_BIN" --config "$CRIO_DIR/crio.conf" --config-dir "$CRIO_DIR/conf.d" \
		--log-level info >"$CRIO_DIR/crio.log" 2>&1 &
	echo $! >"$CRIO_DIR/pid"
	local i
	for ((i = 0; i < 150; i++)); do
		"${CRICTL[@]}" version >/dev/null 2>&1 && break
		sleep 0.2
	done
	"${CRICTL[@]}" version >&2 || {
		tail -30 "$CRIO_DIR/crio.log" >&2
		return 1
	}
	"${CRICTL[@]}" images >&2
}

# Stops and removes every container and pod of the test's CRI-O.
crio_remove_all() {
	local p
	# The workload (pid 1 of its namespace) ignores SIGTERM: stop at once.
	for p in $("${CRICTL[@]}" ps -q 2>/dev/null); do
		timeout 60 "${CRICTL[@]}" stop -t 0 "$p" >/dev/null 2>&1 || true
	done
	for p in $("${CRICTL[@]}" pods -q 2>/dev/null); do
		timeout 60 "${CRICTL[@]}" stopp "$p" >/dev/null 2>&1 || true
		timeout 60 "${CRICTL[@]}" rmp -f "$p" >/dev/null 2>&1 || true
	done
}

# Removes the pods and stops the CRI-O crio_start started, by its pid.
crio_stop() {
	[ -f "$CRIO_DIR/pid" ] || return 0
	crio_remove_all
	stop_by_pidfile "$CRIO_DIR/pid" 100
	kill_own -x conmon "$CRIO_DIR"
	engines_unmount_all
	engines_rm_cgroups runcr-test-crio
	engines_rm_cgroups runcr-test-kubelet
}

# crictl under bats' run with a time limit.
cri() {
	trun "${CRICTL[@]}" "$@"
}

# crio_pod NAME HANDLER: runs a pod sandbox with the runtime handler HANDLER
# (runcr or runc), host network, pid namespace per container; sets POD_ID.
crio_pod() {
	local name=$1 handler=$2 f=$BATS_TEST_TMPDIR/pod-$1.json
	jq -n --arg n "$name" --arg u "uid-$name-$RANDOM" --arg logs "$CRIO_DIR/logs/$name" '{
		metadata: {name: $n, namespace: "default", uid: $u, attempt: 0},
		log_directory: $logs,
		linux: {cgroup_parent: "/runcr-test-crio", security_context: {namespace_options: {network: 2, pid: 1, ipc: 0}}}
	}' >"$f"
	POD_JSON=$f
	cri runp --runtime "$handler" "$f"
	[ "$status" -eq 0 ] || fail "crictl runp failed" || return 1
	POD_ID=$(tail -1 <<<"$output")
}

# crio_ctr NAME IMAGE: creates and starts container NAME in $POD_ID from
# IMAGE (the test image: the workload; a checkpoint archive: restored);
# sets CRIO_CTR.
crio_ctr() {
	local name=$1 image=$2 f=$BATS_TEST_TMPDIR/ctr-$1.json
	# /etc/hosts from a file of the test's, as the kubelet gives every
	# container one (else CRI-O binds the host's /etc/hosts). A restore must
	# be given the checkpointed container's bind mounts again (CRI-O refuses
	# otherwise: "expects following bind mounts defined (/etc/hosts)").
	local hosts=$BATS_TEST_TMPDIR/hosts-$name
	printf '127.0.0.1 localhost\n::1 localhost\n' >"$hosts"
	local cmd='[]'
	[ "$image" = "$IMAGE_REF" ] && cmd=$(jq -cn --arg w "$WORKLOAD" '["sh", "-c", $w]')
	jq -n --arg n "$name" --arg i "$image" --argjson c "$cmd" --arg h "$hosts" '{
		metadata: {name: $n}, image: {image: $i}, log_path: ($n + ".log"),
		mounts: [{container_path: "/etc/hosts", host_path: $h}],
		linux: {security_context: {namespace_options: {network: 2, pid: 1, ipc: 0}}}}
		| if ($c | length) > 0 then .command = $c else . end' >"$f"
	cri create "$POD_ID" "$f" "$POD_JSON"
	[ "$status" -eq 0 ] || fail "crictl create failed" || return 1
	CRIO_CTR=$(tail -1 <<<"$output")
	cri start "$CRIO_CTR"
	[ "$status" -eq 0 ] || fail "crictl start failed"
}

# Reader for wait_state/assert_continues.
crio_reader() {
	timeout 30 "${CRICTL[@]}" exec "$CRIO_CTR" cat /tmp/state
}

# crio_logs_clean CONTAINER MD5 [AFTER]: crictl logs holds only the workload's lines
# (no runtime warning), all of the one workload (MD5). A restored container's
# log starts with the checkpointed one's (CRI-O puts the log in the archive
# and back), so it holds one counter=1 line at most: two would be a restart;
# its last line is past counter AFTER.
crio_logs_clean() {
	local out bad
	out=$("${CRICTL[@]}" logs "$1" 2>&1)
	bad=$(grep -v -E "^counter=[0-9]+ mem=OK md5=$2\$" <<<"$out" || true)
	if [ -n "$bad" ]; then
		log "crictl logs $1 has lines that are not the workload's:"
		log "$bad"
		return 1
	fi
	[ "$(grep -c '^counter=1 ' <<<"$out")" -le 1 ] || fail "counter=1 twice in crictl logs $1: a restart" || return 1
	# The restored workload's own lines reach the new log.
	[ -z "${3:-}" ] || { parse_state "$(tail -1 <<<"$out")" && [ "$COUNTER" -gt "$3" ]; } ||
		fail "crictl logs $1 ends before counter $3: the restored workload's output is not there" || return 1
}
