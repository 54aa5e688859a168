#!/bin/bash
# containerd 2.x helpers: one private containerd per version (own config,
# root, state, sockets and runc roots under the run's temp dir) with its CRI
# plugin on, driven with crictl. Each has two runtime handlers (see
# containerd2-config.toml): "runcr" runs the logging wrapper around runcr
# (the runc options' BinaryName), "runc" runs runc v1.4.4 as the reference;
# a pod picks one with its RuntimeHandler (crictl runp --runtime).
#
# The binaries come from tests/setup/install-containerd2.sh (go install at
# pinned versions), in version directories off PATH, so Debian's containerd
# 1.6 (/usr/bin, containerd.bats) is never shadowed. Images are imported
# with Debian's ctr (the images/content API is the same): the test image
# and a "pause" image for the sandbox, both from $ROOTFS.
#
# Optional environment:
#   CTRD2_PREFIX    where install-containerd2.sh put them
#                   (default /usr/local/libexec/runcr-engines)
#   CTRD2_VERSIONS  the containerd versions to start (default "2.4.2 2.3.7")
#   CRICTL_VERSION  default 1.37.0
#   RUNC_REF        the reference runc (default /usr/local/sbin/runc)

# shellcheck disable=SC2154 # status and output are set by bats' run
CTRD2_PREFIX=${CTRD2_PREFIX:-/usr/local/libexec/runcr-engines}
CTRD2_VERSIONS=${CTRD2_VERSIONS:-2.4.2 2.3.7}
CRICTL_VERSION=${CRICTL_VERSION:-1.37.0}
CRICTL_BIN=$CTRD2_PREFIX/crictl-$CRICTL_VERSION/crictl
RUNC_REF=${RUNC_REF:-/usr/local/sbin/runc}
PAUSE_REF=localhost/runcr-pause:test
# Both images in one docker-archive (one shared layer).
CTRD2_IMAGES_TAR=$ENGINES_TMP/ctrd2-images.tar
# CRI's containerd namespace.
CTRD2_NS=k8s.io

# The pause image's entrypoint: sleep until stopped (busybox has no pause).
PAUSE_CMD='trap "exit 0" TERM INT; while :; do sleep 3600 & wait $!; done'

ctrd2_bindir() { echo "$CTRD2_PREFIX/containerd-$1"; }
# Short: the socket path must fit a sockaddr_un.
ctrd2_dir() { echo "$ENGINES_TMP/c${1//./}"; }

# requires_ctrd2 VERSION: skips unless containerd VERSION and crictl are
# installed.
requires_ctrd2() {
	local b
	b=$(ctrd2_bindir "$1")
	[ -x "$b/containerd" ] && [ -x "$b/containerd-shim-runc-v2" ] ||
		skip "needs containerd $1 in $b (bash tests/setup/install-containerd2.sh)"
	[ -x "$CRICTL_BIN" ] || skip "needs crictl $CRICTL_VERSION (bash tests/setup/install-containerd2.sh)"
	requires_cmd ctr
}

# ctrd2_use VERSION: points C2_DIR, C2_SOCK and CRICTL at that instance.
ctrd2_use() {
	C2_DIR=$(ctrd2_dir "$1")
	C2_SOCK=$C2_DIR/c.sock
	CRICTL=("$CRICTL_BIN" --config "$C2_DIR/crictl.yaml")
}

# ctrd2_has_restore_via_create VERSION: the version's CRI runtime config
# has enable_experimental_restore_via_create (containerd <= 2.3).
ctrd2_has_restore_via_create() {
	"$(ctrd2_bindir "$1")/containerd" config default 2>/dev/null | grep -q '^ *enable_experimental_restore_via_create'
}

# Builds $CTRD2_IMAGES_TAR: $IMAGE_REF (the rootfs, Cmd sh) and $PAUSE_REF
# (the same layer, entrypoint $PAUSE_CMD), as a docker-archive for
# `ctr images import`. No registry is involved.
ctrd2_images_tar() {
	(
		flock 9
		[ -s "$CTRD2_IMAGES_TAR" ] && exit 0
		local d diff cfg pcfg
		d=$(mktemp -d "$ENGINES_TMP/img2.XXXXXX")
		tar -C "$ROOTFS" --numeric-owner -cf "$d/layer.tar" .
		diff=$(sha256sum "$d/layer.tar" | cut -d' ' -f1)
		jq -n --arg diff "sha256:$diff" '{architecture: "amd64", os: "linux", created: "2024-01-01T00:00:00Z",
			config: {Cmd: ["/bin/sh"], Env: ["PATH=/bin:/sbin:/usr/bin:/usr/sbin"], WorkingDir: "/"},
			rootfs: {type: "layers", diff_ids: [$diff]}}' >"$d/c.json"
		jq --arg cmd "$PAUSE_CMD" '.config = {Entrypoint: ["/bin/sh", "-c", $cmd],
			Env: ["PATH=/bin:/sbin:/usr/bin:/usr/sbin"], WorkingDir: "/"}' "$d/c.json" >"$d/p.json"
		cfg=$(sha256sum "$d/c.json" | cut -d' ' -f1)
		pcfg=$(sha256sum "$d/p.json" | cut -d' ' -f1)
		mv "$d/c.json" "$d/$cfg.json"
		mv "$d/p.json" "$d/$pcfg.json"
		jq -n --arg c "$cfg.json" --arg p "$pcfg.json" --arg ref "$IMAGE_REF" --arg pref "$PAUSE_REF" \
			'[{Config: $c, RepoTags: [$ref], Layers: ["layer.tar"]},
			  {Config: $p, RepoTags: [$pref], Layers: ["layer.tar"]}]' >"$d/manifest.json"
		tar -C "$d" -cf "$CTRD2_IMAGES_TAR.tmp" manifest.json "$cfg.json" "$pcfg.json" layer.tar
		mv "$CTRD2_IMAGES_TAR.tmp" "$CTRD2_IMAGES_TAR"
		rm -rf "$d"
	) 9>"$ENGINES_TMP.img2.lock"
}

# ctrd2_start VERSION: writes the config, starts containerd VERSION, waits
# for CRI to answer and imports the images. Returns 0 without starting when
# the version is not installed (its tests skip).
ctrd2_start() {
	local v=$1 bindir restore_line=
	bindir=$(ctrd2_bindir "$v")
	[ -x "$bindir/containerd" ] && [ -x "$CRICTL_BIN" ] || return 0
	engines_setup_bin
	ctrd2_images_tar
	ctrd2_use "$v"
	mkdir -p "$C2_DIR"/{root,state,runc-root,cni/bin,cni/conf,logs}
	if ctrd2_has_restore_via_create "$v"; then
		restore_line='enable_experimental_restore_via_create = true'
	fi
	local sockdir_line=
	[ ${#C2_DIR} -le 40 ] && sockdir_line="socket_dir = \"$C2_DIR/s\""
	sed -e "s|@SOCKDIR_LINE@|$sockdir_line|g" -e "s|@ROOT@|$C2_DIR/root|g" -e "s|@STATE@|$C2_DIR/state|g" -e "s|@SOCK@|$C2_SOCK|g" \
		-e "s|@PAUSE@|$PAUSE_REF|g" -e "s|@RESTORE_LINE@|$restore_line|g" \
		-e "s|@RUNC@|$RUNC_REF|g" -e "s|@RUNCR@|$ENGINES_BIN/runcr|g" \
		-e "s|@RUNC_ROOT@|$C2_DIR/runc-root|g" -e "s|@CNI@|$C2_DIR/cni|g" \
		"$ENGINES_DIR/containerd2-config.toml" >"$C2_DIR/config.toml"
	printf 'runtime-endpoint: unix://%s\nimage-endpoint: unix://%s\ntimeout: 60\n' "$C2_SOCK" "$C2_SOCK" >"$C2_DIR/crictl.yaml"
	# containerd looks for containerd-shim-runc-v2 on PATH before its own
	# directory: put the version's directory first, or it starts Debian's
	# 1.6 shim from /usr/bin.
	# Its temporary directories (ctrd-checkpoint* from the tasks service,
	# checkpoint* from CRI's restore) go to XDG_RUNTIME_DIR and TMPDIR,
	# /tmp by default, where some are never removed: keep them private.
	mkdir -p "$C2_DIR/tmp"
	PATH=$bindir:$PATH XDG_RUNTIME_DIR=$C2_DIR/tmp TMPDIR=$C2_DIR/tmp "$bindir/containerd" --config "$C2_DIR/config.toml" >"$C2_DIR/containerd.log" 2>&1 &
	echo $! >"$C2_DIR/pid"
	local i
	for ((i = 0; i < 100; i++)); do
		"${CRICTL[@]}" version >/dev/null 2>&1 && break
		sleep 0.2
	done
	"${CRICTL[@]}" version >&2 || {
		tail -30 "$C2_DIR/containerd.log" >&2
		return 1
	}
	ctr --address "$C2_SOCK" --namespace "$CTRD2_NS" images import "$CTRD2_IMAGES_TAR" >&2
	# CRI learns of imported images through containerd's events: wait.
	for ((i = 0; i < 50; i++)); do
		"${CRICTL[@]}" inspecti "$PAUSE_REF" >/dev/null 2>&1 &&
			"${CRICTL[@]}" inspecti "$IMAGE_REF" >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	"${CRICTL[@]}" images >&2
	fail "containerd $v: CRI does not list the imported images"
}

# ctrd2_remove_pods: force-removes every pod (and so its containers) of the
# current instance.
ctrd2_remove_pods() {
	[ -S "$C2_SOCK" ] || return 0
	timeout 60 "${CRICTL[@]}" rmp -a -f >/dev/null 2>&1 || true
}

# ctrd2_stop VERSION: removes the pods, stops the containerd ctrd2_start
# started (by its pid) and the shims of its socket, unmounts what is left.
ctrd2_stop() {
	ctrd2_use "$1"
	[ -f "$C2_DIR/pid" ] || return 0
	ctrd2_remove_pods
	stop_by_pidfile "$C2_DIR/pid" 50
	# Shims outlive containerd by design; stop the ones of our socket.
	kill_own -f "$(ctrd2_bindir "$1")/containerd-shim-runc-v2" "$C2_SOCK"
	engines_unmount_all
}

# ctrd2_remove_cgroup_parent: removes the pods' (empty) cgroup parent.
ctrd2_remove_cgroup_parent() {
	local d
	for d in /sys/fs/cgroup/*/runcr-ctrd2 /sys/fs/cgroup/runcr-ctrd2; do
		[ -d "$d" ] && rmdir "$d" 2>/dev/null
	done
	return 0
}

# crictl under bats' run with a time limit.
crictl_() {
	trun "${CRICTL[@]}" "$@"
}

# ctrd2_run_pod NAME HANDLER: starts a pod with runtime handler HANDLER;
# sets POD_ID and POD_JSON. Host network (NamespaceMode NODE = 2: no CNI),
# PID namespaces per container (CONTAINER = 1, what the kubelet asks for
# unless shareProcessNamespace; CRI's zero value is POD), own cgroup parent.
ctrd2_run_pod() {
	local name=$1 handler=$2
	POD_JSON=$BATS_TEST_TMPDIR/$name-pod.json
	mkdir -p "$C2_DIR/logs/$name"
	jq -n --arg name "$name" --arg uid "uid-$name-$$" --arg logs "$C2_DIR/logs/$name" '{
		metadata: {name: $name, namespace: "runcr-test", uid: $uid, attempt: 0},
		log_directory: $logs,
		linux: {cgroup_parent: "/runcr-ctrd2", security_context: {namespace_options: {network: 2, pid: 1}}}}' >"$POD_JSON"
	crictl_ runp --runtime "$handler" "$POD_JSON"
	[ "$status" -eq 0 ] || {
		fail "crictl runp failed"
		return 1
	}
	POD_ID=$output
}

# ctrd2_create_ctr POD_ID POD_JSON NAME IMAGE [CMD...]: creates a container
# (no pull) in its own PID namespace (NamespaceMode CONTAINER, set per
# container as the kubelet does) and sets CID; CMD defaults to the workload.
ctrd2_create_ctr() {
	local pod=$1 podjson=$2 name=$3 image=$4 cjson
	shift 4
	[ $# -gt 0 ] || set -- sh -c "$WORKLOAD"
	cjson=$BATS_TEST_TMPDIR/$name-ctr.json
	# One jq per argument: jq parses options even after --args, so a "-c"
	# in the command would be taken as its own.
	local a cmd
	cmd=$(for a in "$@"; do jq -n --arg a "$a" '$a'; done | jq -s -c .)
	jq -n --arg name "$name" --arg image "$image" --arg log "$name.log" --argjson cmd "$cmd" '{
		metadata: {name: $name}, image: {image: $image}, log_path: $log,
		command: $cmd, linux: {security_context: {namespace_options: {pid: 1}}}}' >"$cjson"
	crictl_ create --no-pull "$pod" "$cjson" "$podjson"
	[ "$status" -eq 0 ] || return 1
	CID=$output
}

# ctrd2_workload POD_NAME HANDLER: a pod with the counter workload running;
# sets POD_ID POD_JSON CID.
ctrd2_workload() {
	ctrd2_run_pod "$1" "$2" || return 1
	ctrd2_create_ctr "$POD_ID" "$POD_JSON" counter "$IMAGE_REF" || {
		fail "crictl create failed"
		return 1
	}
	crictl_ start "$CID"
	[ "$status" -eq 0 ] || fail "crictl start failed"
}

# Reader for wait_state/assert_continues: the state via CRI ExecSync.
ctrd2_reader() {
	timeout 40 "${CRICTL[@]}" exec -s --timeout 30 "$CID" cat /tmp/state
}

# ctrd2_state CID: the container's CRI state (CONTAINER_RUNNING, ...).
ctrd2_state() {
	"${CRICTL[@]}" inspect -o go-template --template '{{.status.state}}' "$1"
}

# The entries every CRI checkpoint archive of the workload has (containerd's
# CheckpointContainer): CRIU's images under checkpoint/ (the workload is PID
# 1 of its PID namespace), the metadata containerd writes, the rw layer diff,
# the container log, and CRIU's dump.log and stats-dump, which it writes into
# its work path (the archive's top directory).
CTRD2_ARCHIVE_ENTRIES=(
	checkpoint/inventory.img checkpoint/pstree.img checkpoint/core-1.img checkpoint/mm-1.img
	checkpoint/pagemap-1.img checkpoint/pages-1.img
	config.dump spec.dump status.dump status rootfs-diff.tar container.log dump.log stats-dump
)

# ctrd2_check_archive FILE: FILE is an uncompressed tar with every entry of
# CTRD2_ARCHIVE_ENTRIES; its config.dump names container $CID, spec.dump is
# the container's OCI spec with the workload, and the rw layer diff has the
# state file the workload wrote.
ctrd2_check_archive() {
	local tar=$1 list e x
	list=$(tar -tf "$tar") || {
		fail "$tar is not a tar archive"
		return 1
	}
	log "archive entries: $(tr '\n' ' ' <<<"$list")"
	for e in "${CTRD2_ARCHIVE_ENTRIES[@]}"; do
		grep -qxF "$e" <<<"$list" || {
			fail "archive lacks $e"
			return 1
		}
	done
	x=$BATS_TEST_TMPDIR/archive
	mkdir -p "$x"
	tar -C "$x" -xf "$tar" config.dump spec.dump rootfs-diff.tar || return 1
	[ "$(jq -r .id "$x/config.dump")" = "$CID" ] || fail "config.dump: id is not $CID" || return 1
	jq -e '.ociVersion and (.process.args | index("sh"))' "$x/spec.dump" >/dev/null ||
		fail "spec.dump is not the workload's OCI spec" || return 1
	tar -tf "$x/rootfs-diff.tar" | grep -qx 'tmp/state' || fail "rootfs-diff.tar lacks tmp/state"
}
