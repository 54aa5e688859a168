#!/bin/bash
# Podman-specific helpers: a private Podman (own storage root, runroot,
# containers.conf) whose OCI runtime is runcr through the logging wrapper.

# shellcheck disable=SC2154 # status and output are set by bats' run
PODMAN_DIR=$ENGINES_TMP/podman

# podman_setup [json]: writes the containers.conf. With "json", runcr is in
# runtime_supports_json, so Podman passes --log FILE --log-format json to the
# runtime through conmon and reads the error from that file; without it
# Podman relies on the runtime's stderr as conmon relays it.
podman_setup() {
	engines_setup_bin
	mkdir -p "$PODMAN_DIR"/{root,run,tmp}
	local supports='"crun", "runc"'
	if [ "${1:-}" = json ]; then
		supports='"crun", "runc", "runcr", "'$ENGINES_BIN/runcr'"'
	fi
	cat >"$PODMAN_DIR/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runcr"
runtime_supports_json = [$supports]

[engine.runtimes]
runcr = ["$ENGINES_BIN/runcr"]

[network]
network_backend = "netavark"
EOF
	export CONTAINERS_CONF=$PODMAN_DIR/containers.conf
	podman_image
}

PODMAN=(podman --root "$PODMAN_DIR/root" --runroot "$PODMAN_DIR/run" --tmpdir "$PODMAN_DIR/tmp"
	--runtime "$ENGINES_BIN/runcr")

# Raw podman with the private storage and runcr as runtime.
__podman() {
	"${PODMAN[@]}" "$@"
}

# podman under bats' run with a time limit, logging command and output.
pm() {
	trun "${PODMAN[@]}" "$@"
}

podman_image() {
	__podman image exists "$IMAGE_REF" 2>/dev/null && return 0
	engines_image_tar
	(
		flock 9
		__podman image exists "$IMAGE_REF" 2>/dev/null ||
			__podman load -q -i "$IMAGE_TAR" >&2
	) 9>"$ENGINES_TMP.podman-img.lock"
}

# Starts the workload in container $1 (extra podman run args after it).
# $WORKLOAD_PRE: shell run before the workload (e.g. a server in the
# background); $PODMAN_RUN_FD3: run podman with fd 3 open (--preserve-fds).
podman_run_workload() {
	local name=$1
	shift
	local cmd=("${PODMAN[@]}" run -d --name "$name" --ulimit nofile=1024:1024 --ulimit nproc=1024:1024
		"$@" "$IMAGE_REF" sh -c "${WORKLOAD_PRE:-} $WORKLOAD")
	if [ -n "${PODMAN_RUN_FD3:-}" ]; then
		trun bash -c 'exec 3</dev/null; exec "$@"' bash "${cmd[@]}"
	else
		trun "${cmd[@]}"
	fi
	[ "$status" -eq 0 ] || fail "podman run failed"
}

# Reader for wait_state/assert_continues: the workload's state via exec.
# shellcheck disable=SC2153 # PODMAN_CTR is set by podman.bats
podman_reader() {
	__podman exec "$PODMAN_CTR" cat /tmp/state
}

podman_teardown() {
	[ -d "$PODMAN_DIR" ] || return 0
	local c
	for c in $(__podman ps -aq 2>/dev/null); do
		timeout 60 "${PODMAN[@]}" rm -f -t 0 "$c" >/dev/null 2>&1 || true
	done
}
