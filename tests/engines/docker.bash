#!/bin/bash
# Docker-specific helpers: Debian's Docker 20.10 with its own dockerd, started
# by the test file with everything private: data root, exec root, pid file and
# API socket under the run's temp dir, a private daemon.json, and no iptables,
# ip forwarding or bridge (containers run with --network none). Its containerd
# (Debian's 1.6) is started here too, with containerd.bats' config template
# (own root, state and socket under $DOCKER_DIR), and given to dockerd with
# --containerd: left alone, dockerd would use a host containerd listening on
# /run/containerd/containerd.sock instead of starting a managed one.
#
# Two runtimes are registered in daemon.json: "runcr" (the logging wrapper)
# and "runcref", the same logging wrapper around runc v1.4.4 itself: the
# reference every test is run against too.

# shellcheck disable=SC2154 # status and output are set by bats' run
DOCKER_DIR=$ENGINES_TMP/dk
DOCKER_SOCK=$DOCKER_DIR/d.sock
# Debian's CLI by full path: another docker may come first on PATH.
DOCKER=(/usr/bin/docker -H "unix://$DOCKER_SOCK")
DOCKERD=/usr/sbin/dockerd

# Starts dockerd (once per file) and loads the test image.
docker_start() {
	engines_setup_bin
	mkdir -p "$DOCKER_DIR"/{data,exec,ctrd/root,ctrd/state}
	sed -e "s|@ROOT@|$DOCKER_DIR/ctrd/root|g" -e "s|@STATE@|$DOCKER_DIR/ctrd/state|g" \
		-e "s|@SOCK@|$DOCKER_DIR/ctrd/c.sock|g" "$ENGINES_DIR/containerd-config.toml" >"$DOCKER_DIR/ctrd/config.toml"
	# containerd unpacks a checkpoint to restore into a temp dir it does not
	# remove (ctrd-checkpoint*), and its shim makes ctd-checkpoint* and
	# runc-process* ones: keep them all in the test's dir, not in /tmp.
	mkdir -p "$DOCKER_DIR/tmp"
	TMPDIR=$DOCKER_DIR/tmp XDG_RUNTIME_DIR=$DOCKER_DIR/tmp \
		containerd --config "$DOCKER_DIR/ctrd/config.toml" >"$DOCKER_DIR/ctrd/containerd.log" 2>&1 &
	echo $! >"$DOCKER_DIR/ctrd/pid"
	local i
	for ((i = 0; i < 100; i++)); do
		[ -S "$DOCKER_DIR/ctrd/c.sock" ] && break
		sleep 0.2
	done
	# The reference: runc through the same logging wrapper.
	sed -e "s|@LOG@|$ARGV_LOG|g" -e "s|@RUNCR@|/usr/local/sbin/runc|g" -e "s|@ENSURE_PATH@||g" \
		"$ENGINES_DIR/runtime-wrapper.sh" >"$ENGINES_BIN/runcref"
	chmod 0755 "$ENGINES_BIN/runcref"
	cat >"$DOCKER_DIR/daemon.json" <<EOF
{
  "runtimes": {
    "runcr": {"path": "$ENGINES_BIN/runcr"},
    "runcref": {"path": "$ENGINES_BIN/runcref"}
  },
  "default-ulimits": {"nofile": {"Name": "nofile", "Hard": 1024, "Soft": 1024}},
  "cgroup-parent": "/runcr-test-docker",
  "deprecated-key-path": "$DOCKER_DIR/key.json"
}
EOF
	# dockerd makes /run/docker/plugins (a fixed path) and, unless told
	# otherwise (deprecated-key-path above), writes /etc/docker/key.json;
	# docker_stop removes /run/docker again if it was not there.
	[ -e /run/docker ] || : >"$DOCKER_DIR/made-run-docker"
	# Host sysctls dockerd could touch; compared in docker_stop.
	sysctl -n net.ipv4.ip_forward net.ipv6.conf.all.forwarding 2>/dev/null >"$DOCKER_DIR/sysctl.before" || true
	TMPDIR=$DOCKER_DIR/tmp "$DOCKERD" --config-file "$DOCKER_DIR/daemon.json" \
		--data-root "$DOCKER_DIR/data" --exec-root "$DOCKER_DIR/exec" \
		--pidfile "$DOCKER_DIR/dockerd.pid" -H "unix://$DOCKER_SOCK" \
		--containerd "$DOCKER_DIR/ctrd/c.sock" \
		--iptables=false --ip6tables=false --ip-forward=false --ip-masq=false \
		--bridge=none --userland-proxy=false --experimental \
		>"$DOCKER_DIR/dockerd.log" 2>&1 &
	echo $! >"$DOCKER_DIR/pid"
	for ((i = 0; i < 150; i++)); do
		"${DOCKER[@]}" version >/dev/null 2>&1 && break
		sleep 0.2
	done
	"${DOCKER[@]}" version >/dev/null || {
		tail -30 "$DOCKER_DIR/dockerd.log" >&2
		return 1
	}
	engines_image_tar
	"${DOCKER[@]}" load -q -i "$IMAGE_TAR" >&2
}

# Stops the dockerd docker_start started, by its pid, after removing its
# containers, then its containerd.
docker_stop() {
	[ -f "$DOCKER_DIR/pid" ] || return 0
	local c
	for c in $("${DOCKER[@]}" ps -aq 2>/dev/null); do
		timeout 60 "${DOCKER[@]}" rm -f "$c" >/dev/null 2>&1 || true
	done
	stop_by_pidfile "$DOCKER_DIR/pid" 100
	# Then its containerd, by pid, and the shims of its socket.
	stop_by_pidfile "$DOCKER_DIR/ctrd/pid" 50
	kill_own -f "containerd-shim-runc-v2 -namespace moby" "$DOCKER_DIR"
	engines_unmount_all
	engines_rm_cgroups runcr-test-docker
	if [ -f "$DOCKER_DIR/made-run-docker" ]; then
		rmdir /run/docker/plugins /run/docker 2>/dev/null || true
		rm -f "$DOCKER_DIR/made-run-docker"
	fi
	if [ -f "$DOCKER_DIR/sysctl.before" ]; then
		sysctl -n net.ipv4.ip_forward net.ipv6.conf.all.forwarding 2>/dev/null >"$DOCKER_DIR/sysctl.after" || true
		cmp -s "$DOCKER_DIR/sysctl.before" "$DOCKER_DIR/sysctl.after" ||
			log "WARNING: dockerd changed host sysctls: $(paste -sd' ' "$DOCKER_DIR/sysctl.before") -> $(paste -sd' ' "$DOCKER_DIR/sysctl.after")"
	fi
}

# docker under bats' run with a time limit, logging command and output.
dk() {
	trun "${DOCKER[@]}" "$@"
}

# Starts the workload in container $1 with runtime $DK_RUNTIME.
docker_run_workload() {
	dk run -d --name "$1" --runtime "$DK_RUNTIME" --network none "$IMAGE_REF" sh -c "$WORKLOAD"
	[ "$status" -eq 0 ] || fail "docker run failed"
}

# Reader for wait_state/assert_continues: the state via docker exec.
docker_reader() {
	timeout 30 "${DOCKER[@]}" exec "$DK_CTR" cat /tmp/state
}

# docker_start_checkpoint CONTAINER CHECKPOINT: docker start --checkpoint,
# retried once: a restore right after a checkpoint sometimes fails with
# "content sha256:... already exists" (moby/moby#42900, a race in dockerd's
# import of the checkpoint into containerd's content store, not the
# runtime's doing), and a second start succeeds.
docker_start_checkpoint() {
	dk start --checkpoint "$2" "$1"
	if [ "$status" -ne 0 ] && [[ $output == *"already exists"* ]]; then
		log "moby/moby#42900 (content already exists): retrying once"
		sleep 1
		dk start --checkpoint "$2" "$1"
	fi
	[ "$status" -eq 0 ] || fail "docker start --checkpoint $2 $1 failed"
}

# docker_logs_clean CONTAINER: docker logs holds only the workload's lines
# (no runtime warning, error or log line), and its counters go on without a
# restart from 1 after the first line.
docker_logs_clean() {
	local out
	out=$("${DOCKER[@]}" logs "$1" 2>&1)
	local bad
	bad=$(grep -v -E '^counter=[0-9]+ mem=OK md5=[0-9a-f]{32}$' <<<"$out" || true)
	if [ -n "$bad" ]; then
		log "docker logs $1 has lines that are not the workload's:"
		log "$bad"
		return 1
	fi
	# shellcheck disable=SC2034 # used by the tests
	DOCKER_LOG=$out
}
