#!/bin/bash
# Helpers for runcr's engine tests: real container engines (Debian's Podman
# and containerd) drive runcr as their OCI runtime. Run as
#
#   RUNCR=/abs/path/runcr ROOTFS=/abs/path/rootfs bats tests/engines
#
# Needs root and the engines (tests/setup/install-engines.sh); a test whose
# engine is missing is skipped with the reason.
#
# Every engine calls runcr through a logging wrapper, $ENGINES_BIN/runcr,
# which appends one line per call to $ARGV_LOG:
#   <time> caller=<parent comm> argv: <shell-quoted argv>
#   <time> caller=<parent comm> rc=<exit status>
# so a test can assert on exactly what the engine sent, and a failure shows it.
# The engines find CRIU through PATH, whose first criu is the real binary
# (CRIU_REAL, default /usr/local/libexec/criu-real if present), never a
# wrapper that sets CRIU_FAULT: runcr must cope with this host by itself.
#
# Optional environment:
#   ENGINES_TEST_TIMEOUT  seconds one engine command may take (default 120)
#   ENGINES_KEEP          keep the temp dirs (podman storage, containerd root)
#   CRIU_REAL             the criu binary to put first on PATH
#   ENGINES_ENSURE_PATH   exploration aid: a PATH the wrapper exports when the
#                         engine gives the runtime none (default: unset, so
#                         runcr gets the engine's environment as is)

bats_require_minimum_version 1.5.0

ENGINES_DIR=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
REPO_ROOT=$(dirname "$(dirname "$ENGINES_DIR")")

: "${RUNCR:?set RUNCR to the absolute path of the runcr binary}"
: "${ROOTFS:?set ROOTFS to the rootfs built by tests/setup/make-rootfs.sh}"
: "${ENGINES_TEST_TIMEOUT:=120}"
if [ -z "${CRIU_REAL:-}" ]; then
	if [ -x /usr/local/libexec/criu-real ]; then
		CRIU_REAL=/usr/local/libexec/criu-real
	else
		CRIU_REAL=$(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin command -v criu || true)
	fi
fi

# One directory per bats run, shared by all files: engine storage, the
# wrapper and its log. Short, because unix socket paths are limited.
ENGINES_TMP=${ENGINES_TMP:-$BATS_RUN_TMPDIR/e}
ENGINES_BIN=$ENGINES_TMP/bin
ARGV_LOG=$ENGINES_TMP/runtime-argv.log
IMAGE_REF=localhost/runcr-busybox:test
IMAGE_TAR=$ENGINES_TMP/busybox-image.tar

# The runtime's PATH: real criu first, runc v1.4.4 (/usr/local/sbin) before
# Debian's runc 1.1.5 (/usr/sbin), which the engine packages pull in.
export PATH=$ENGINES_BIN:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# shellcheck disable=SC2034 # used by the tests
WORKLOAD=$(grep -v '^#' "$ENGINES_DIR/workload.sh")

log() {
	printf '%s\n' "$*" >&2
}

fail() {
	log "FAIL: $*"
	return 1
}

# Sets up $ENGINES_BIN (criu symlink and runcr wrapper) once per run.
engines_setup_bin() {
	mkdir -p "$ENGINES_BIN"
	(
		flock 9
		[ -x "$ENGINES_BIN/runcr" ] && exit 0
		[ -n "$CRIU_REAL" ] && ln -sf "$CRIU_REAL" "$ENGINES_BIN/criu"
		sed -e "s|@LOG@|$ARGV_LOG|g" -e "s|@RUNCR@|$RUNCR|g" -e "s|@ENSURE_PATH@|${ENGINES_ENSURE_PATH:-}|g" "$ENGINES_DIR/runtime-wrapper.sh" >"$ENGINES_BIN/runcr"
		chmod 0755 "$ENGINES_BIN/runcr"
	) 9>"$ENGINES_TMP.bin.lock"
}

# Prints the argv lines logged since byte offset $1 (see argv_mark).
argv_since() {
	tail -c +"$(($1 + 1))" "$ARGV_LOG" 2>/dev/null | grep ' argv: ' | sed 's/^.* argv: //'
}

argv_mark() {
	stat -c %s "$ARGV_LOG" 2>/dev/null || echo 0
}

# stop_by_pidfile FILE TRIES: stops the daemon whose pid FILE holds (a
# test's private engine), SIGTERM first, SIGKILL after TRIES * 0.2 s, and
# removes FILE.
stop_by_pidfile() {
	local file=$1 tries=$2 pid i
	[ -f "$file" ] || return 0
	pid=$(cat "$file")
	kill "$pid" 2>/dev/null || true
	for ((i = 0; i < tries; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.2
	done
	kill -9 "$pid" 2>/dev/null || true
	rm -f "$file"
}

# kill_own -f|-x PATTERN NEEDLE: kills the processes `pgrep -f|-x PATTERN`
# finds whose command line holds NEEDLE (a path private to the test): shims
# and monitors outlive their engine by design, and the host's must be left.
kill_own() {
	local mode=$1 pattern=$2 needle=$3 p
	for p in $(pgrep "$mode" -- "$pattern" || true); do
		grep -qF "$needle" "/proc/$p/cmdline" 2>/dev/null && kill "$p" 2>/dev/null
	done
	return 0
}

# Unmounts whatever the engines left mounted under $ENGINES_TMP (storage
# overlays, netns and shm bind mounts), deepest first.
engines_unmount_all() {
	awk -v p="$ENGINES_TMP/" 'index($5, p) == 1 {print $5}' /proc/self/mountinfo | sort -r |
		while read -r m; do umount -l "$m" 2>/dev/null || true; done
}

# Copies the runtime argv log to tests/.build/engines-argv-NAME.log with the
# run's temp dir shortened to $T and container ids to <ID>, for reading.
engines_save_argv_log() {
	local out=$REPO_ROOT/tests/.build/engines-argv-$1.log
	mkdir -p "$(dirname "$out")"
	[ -f "$ARGV_LOG" ] || return 0
	sed -E -e "s#$ENGINES_TMP#\$T#g" -e "s#$BATS_RUN_TMPDIR#\$RUN#g" -e 's/[0-9a-f]{64}/<ID>/g' "$ARGV_LOG" >"$out" || true
}

# Prints the logged lines (argv and rc) since byte offset $1.
argv_log_since() {
	tail -c +"$(($1 + 1))" "$ARGV_LOG" 2>/dev/null
}

# Builds a docker-archive image of $ROOTFS (one layer), for `podman load` and
# `ctr images import`; no registry is involved.
engines_image_tar() {
	(
		flock 9
		[ -s "$IMAGE_TAR" ] && exit 0
		local d
		d=$(mktemp -d "$ENGINES_TMP/img.XXXXXX")
		tar -C "$ROOTFS" --numeric-owner -cf "$d/layer.tar" .
		local diff cfg
		diff=$(sha256sum "$d/layer.tar" | cut -d' ' -f1)
		cat >"$d/config.json" <<EOF
{"architecture":"amd64","os":"linux","created":"2024-01-01T00:00:00Z",
 "config":{"Cmd":["/bin/sh"],"Env":["PATH=/bin:/sbin:/usr/bin:/usr/sbin"],"WorkingDir":"/"},
 "rootfs":{"type":"layers","diff_ids":["sha256:$diff"]}}
EOF
		cfg=$(sha256sum "$d/config.json" | cut -d' ' -f1)
		mv "$d/config.json" "$d/$cfg.json"
		printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["layer.tar"]}]\n' "$cfg" "$IMAGE_REF" >"$d/manifest.json"
		tar -C "$d" -cf "$IMAGE_TAR.tmp" manifest.json "$cfg.json" layer.tar
		mv "$IMAGE_TAR.tmp" "$IMAGE_TAR"
		rm -rf "$d"
	) 9>"$ENGINES_TMP.img.lock"
}

requires_root() {
	[ "$EUID" -eq 0 ] || skip "needs root"
}

requires_cmd() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null || skip "needs $c (bash tests/setup/install-engines.sh)"
	done
}

# Runs "$@" under a time limit with bats' run, logging command and output.
trun() {
	run timeout -k 5 "$ENGINES_TEST_TIMEOUT" "$@"
	log "\$ $* (status=$status)"
	[ -n "$output" ] && log "$output"
	return 0
}

# Like trun, but the command's output goes through a file, not a pipe: for
# runtime calls whose container (run -d, restore -d) would inherit and hold
# bats' capture pipe open. stdin is /dev/null.
frun() {
	local f
	f=$(mktemp "$BATS_TEST_TMPDIR/frun.XXXXXX")
	status=0
	timeout -k 5 "$ENGINES_TEST_TIMEOUT" "$@" </dev/null >"$f" 2>&1 || status=$?
	output=$(cat "$f")
	log "\$ $* (status=$status)"
	[ -n "$output" ] && log "$output"
	return 0
}

# Parses a workload line "counter=N mem=X md5=M" into COUNTER MEM MD5.
parse_state() {
	COUNTER='' MEM='' MD5=''
	local line=$1 f
	for f in $line; do
		case $f in
		counter=*) COUNTER=${f#counter=} ;;
		mem=*) MEM=${f#mem=} ;;
		md5=*) MD5=${f#md5=} ;;
		esac
	done
	[ -n "$COUNTER" ] && [ -n "$MEM" ] && [ -n "$MD5" ]
}

# wait_state READER [MIN_COUNTER]: polls READER (a command printing the
# workload's state line) until the counter exceeds MIN_COUNTER (default 0);
# sets COUNTER MEM MD5. Fails after 30 s.
wait_state() {
	local reader=$1 min=${2:-0} out i
	for ((i = 0; i < 60; i++)); do
		out=$($reader 2>/dev/null) || out=
		if parse_state "$out" && [ "$COUNTER" -gt "$min" ]; then
			return 0
		fi
		sleep 0.5
	done
	fail "workload state never passed counter $min (last: '${out}')"
}

# assert_continues READER BEFORE_COUNTER BEFORE_MD5: the restored workload
# counts on from BEFORE_COUNTER (not from 1), its memory hash is intact
# (mem=OK) and it is the same random string as before (md5 unchanged).
assert_continues() {
	local reader=$1 before=$2 md5=$3
	wait_state "$reader" "$before" || return 1
	log "after restore: counter=$COUNTER mem=$MEM md5=$MD5 (before: counter=$before md5=$md5)"
	[ "$MEM" = OK ] || fail "memory check failed after restore: mem=$MEM"
	[ "$MD5" = "$md5" ] || fail "md5 changed ($md5 -> $MD5): the workload restarted instead of being restored"
	local first=$COUNTER
	sleep 1.2
	parse_state "$($reader)" || fail "no state"
	[ "$COUNTER" -gt "$first" ] || fail "counter stuck at $COUNTER: the workload is not running"
	[ "$MEM" = OK ] || fail "mem=$MEM"
}

# check_runcr_reads_engine_archive ARCHIVE ENGINE NAME: `runcr inspect` of an
# engine's checkpoint archive (podman container checkpoint --export, crictl
# checkpoint --export) names ENGINE (Podman, CRI-O, containerd) and the
# container NAME, shows the process tree with the workload's shell, and the
# JSON agrees; sets INSPECT_JSON for further checks.
check_runcr_reads_engine_archive() {
	local archive=$1 engine=$2 name=$3
	run "$RUNCR" inspect "$archive"
	log "\$ runcr inspect $archive (status=$status)"
	log "$output"
	[ "$status" -eq 0 ] || fail "runcr inspect failed"
	grep -qE "^Engine: +$engine\$" <<<"$output" || fail "inspect does not say Engine: $engine"
	grep -qE "^Container: +$name\$" <<<"$output" || fail "inspect does not name the container $name"
	grep -qE '^Processes: [1-9]' <<<"$output" || fail "no process tree"
	grep -qE '^ +1 +0 .* sh ' <<<"$output" || fail "the workload's shell is not pid 1 of the tree"
	run "$RUNCR" inspect --format json "$archive"
	[ "$status" -eq 0 ] || fail "runcr inspect --format json failed: $output"
	INSPECT_JSON=$output
	jq -e --arg e "$engine" --arg n "$name" '.engine.engine == $e and .engine.container_name == $n and
		(.engine.container_id | length) > 0 and .engine.checkpoint_bytes > 0 and
		.processes[0].comm == "sh" and .memory.pages > 0 and
		(.mounts | map(.mountpoint) | index("/proc")) != null' <<<"$INSPECT_JSON" >/dev/null ||
		fail "inspect's JSON lacks the engine, container, processes, memory or mounts"
}

# bundle_from_engine_archive ARCHIVE BUNDLE NETNS [ROOT_MODE]: a fresh
# bundle for `runcr restore --import ARCHIVE`: the test rootfs (its top
# directory's mode set to ROOT_MODE, which CRIU checks against the dumped
# one) and a config.json made from the archive's spec.dump with root.path
# "rootfs", each bind mount's source replaced by a new file or directory in
# BUNDLE/binds, the network namespace joined at /run/netns/NETNS (created
# here) and no cgroupsPath. This is what runcr-restore(8) tells users to do.
bundle_from_engine_archive() {
	local archive=$1 b=$2 netns=$3 mode=${4:-}
	mkdir -p "$b/binds"
	cp -a "$ROOTFS" "$b/rootfs"
	[ -n "$mode" ] && chmod "$mode" "$b/rootfs"
	tar -xOf "$archive" spec.dump >"$b/spec.dump" 2>/dev/null ||
		tar -I zstd -xOf "$archive" spec.dump >"$b/spec.dump" ||
		fail "no spec.dump in $archive" || return 1
	ip netns add "$netns"
	local i=0 dest src new
	local -a args=()
	while IFS=$'\t' read -r dest src; do
		new=$b/binds/$i
		if [ -d "$src" ] || [ "$dest" = /dev/shm ] || [ -d "$b/rootfs$dest" ]; then
			mkdir -p "$new"
		else
			echo "# $dest for the restored container" >"$new"
		fi
		args+=(--arg "m$i" "$new")
		i=$((i + 1))
	done < <(jq -r '.mounts[] | select(.type == "bind" or ((.options // []) | index("bind") or index("rbind"))) | [.destination, .source] | @tsv' "$b/spec.dump")
	jq "${args[@]}" --arg ns "/run/netns/$netns" '
		.root = {path: "rootfs"} | del(.linux.cgroupsPath) | del(.hooks) |
		reduce range(0; .mounts | length) as $j ({o: ., k: 0};
			if (.o.mounts[$j].type == "bind" or ((.o.mounts[$j].options // []) | index("bind") or index("rbind")))
			then .o.mounts[$j].source = $ARGS.named["m\(.k)"] | .k += 1 else . end) | .o |
		.linux.namespaces |= map(if .type == "network" then .path = $ns else . end)' \
		"$b/spec.dump" >"$b/config.json"
}

# engines_rm_cgroups NAME: removes the (empty, once the engine is gone)
# cgroup directories /NAME that an engine given that cgroup parent created,
# in every hierarchy, deepest first.
engines_rm_cgroups() {
	local h
	for h in /sys/fs/cgroup/*/ /sys/fs/cgroup/unified/; do
		[ -d "$h$1" ] || continue
		find "$h$1" -depth -type d -exec rmdir {} + 2>/dev/null || true
	done
}
