#!/usr/bin/env bats
# kubelet v1.34.4 standalone (static pods, no API server) over the private
# CRI-O v1.34.0 of crio.bash, with runcr as CRI-O's default runtime and, as
# the reference, with runc (the same CRI-O started again with runc as its
# default). The kubelet's checkpoint API (ContainerCheckpoint) writes an
# archive; a checkpoint image made from it with buildah (annotation
# io.kubernetes.cri-o.annotations.checkpoint.name) is the image of a new
# static pod, which CRI-O restores.

load helpers
# A CRI-O of its own, not crio.bats' one.
CRIO_DIR=$ENGINES_TMP/crio-kl
load crio
load kubelet

setup_file() {
	requires_root
	requires_crio
	requires_kubelet
}

teardown_file() {
	engines_save_argv_log "kubelet"
	kubelet_stop
	crio_stop
}

setup() {
	requires_root
	requires_crio
	requires_kubelet
	MARK=$(argv_mark)
}

teardown() {
	log "--- runtime calls in this test:"
	argv_log_since "$MARK" >&2 || true
	grep -E '^[EW][0-9]{4} ' "$KL_DIR/kubelet.log" 2>/dev/null | grep -iE 'checkpoint|restore|fail' | tail -15 >&2 || true
	kubelet_stop
	crio_stop
}

# check_kubelet HANDLER: CRI-O with HANDLER as its default runtime, kubelet
# over it; static workload pod, checkpoint via the kubelet API (HTTP 200,
# archive, still running), checkpoint image, restored static pod goes on.
check_kubelet() {
	local handler=$1
	CRIO_DEFAULT_RUNTIME=$handler crio_start
	kubelet_start
	KL_POD=wl
	kl_static_pod wl "$IMAGE_REF" "$WORKLOAD"
	wait_state kl_reader 2
	local before=$COUNTER md5=$MD5
	local out
	kl_api GET /pods
	out=$KL_BODY
	[ "$KL_HTTP" = 200 ] || fail "GET /pods: HTTP $KL_HTTP"
	jq -e --arg p "wl-$KL_NODE" '.items[] | select(.metadata.name == $p)' <<<"$out" >/dev/null ||
		fail "GET /pods does not list wl-$KL_NODE"

	kl_api POST "/checkpoint/default/wl-$KL_NODE/wl"
	out=$KL_BODY
	log "POST /checkpoint: HTTP $KL_HTTP $out"
	[ "$KL_HTTP" = 200 ] || fail "POST /checkpoint: HTTP $KL_HTTP"
	local archive
	archive=$(jq -r '.items[0]' <<<"$out")
	[ -s "$archive" ] || fail "no archive $archive"
	argv_since "$MARK" | grep -E ' checkpoint .*--leave-running' | grep -F "$CRIO_DIR/$handler-root" >/dev/null ||
		fail "the $handler handler got no checkpoint"
	wait_state kl_reader "$before"
	[ "$MD5" = "$md5" ] || fail "not the same workload after the checkpoint"
	check_runcr_reads_engine_archive "$archive" CRI-O wl

	# The checkpoint image, in CRI-O's storage.
	local ref=localhost/ckpt-wl-$handler:1 c
	c=$(buildah --root "$CRIO_DIR/root" --runroot "$CRIO_DIR/runroot" --storage-driver overlay from scratch)
	buildah --root "$CRIO_DIR/root" --runroot "$CRIO_DIR/runroot" --storage-driver overlay add "$c" "$archive" / >&2
	buildah --root "$CRIO_DIR/root" --runroot "$CRIO_DIR/runroot" --storage-driver overlay config \
		--annotation=io.kubernetes.cri-o.annotations.checkpoint.name=wl "$c" >&2
	buildah --root "$CRIO_DIR/root" --runroot "$CRIO_DIR/runroot" --storage-driver overlay commit -q "$c" "$ref" >&2
	buildah --root "$CRIO_DIR/root" --runroot "$CRIO_DIR/runroot" --storage-driver overlay rm "$c" >&2

	local m
	m=$(argv_mark)
	# shellcheck disable=SC2034 # read by kl_reader
	KL_POD=rs
	kl_static_pod rs "$ref"
	assert_continues kl_reader "$before" "$md5"
	argv_since "$m" | grep -E ' restore ' | grep -F "$CRIO_DIR/$handler-root" >/dev/null ||
		fail "the $handler handler got no restore"
	kl_api GET /pods
	out=$KL_BODY
	jq -e --arg p "rs-$KL_NODE" '.items[] | select(.metadata.name == $p) | .status.containerStatuses[0].state.running' <<<"$out" >/dev/null ||
		fail "GET /pods: rs-$KL_NODE not running"
	kl_api GET "/containerLogs/default/rs-$KL_NODE/wl"
	out=$(printf '%s' "$KL_BODY") # without the trailing newline
	[ "$KL_HTTP" = 200 ] || fail "GET /containerLogs: HTTP $KL_HTTP"
	# Only the workload's lines (no runtime warning), all of the one workload;
	# CRI-O puts the checkpointed container's log back first, so counter=1
	# at most once, and the restored workload's lines at the end.
	local bad
	bad=$(grep -v -E "^counter=[0-9]+ mem=OK md5=$md5\$" <<<"$out" || true)
	[ -z "$bad" ] || fail "the restored container's log has lines that are not the workload's: $bad"
	[ "$(grep -c '^counter=1 ' <<<"$out")" -le 1 ] || fail "counter=1 twice in the restored container's log: a restart"
	parse_state "$(tail -1 <<<"$out")" && [ "$COUNTER" -gt "$before" ] ||
		fail "the restored container's log ends before counter $before"
}

@test "kubelet over CRI-O with runcr: checkpoint API, checkpoint image restored as a static pod" {
	check_kubelet runcr
}

@test "kubelet over CRI-O with runc (reference): checkpoint API, checkpoint image restored as a static pod" {
	check_kubelet runc
}
