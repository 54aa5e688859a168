#!/bin/bash
# containerd-specific helpers: a private containerd (own config, root, state
# and socket under the run's temp dir), driven with ctr; its runc shim v2
# calls runcr (the logging wrapper) as the runc binary via --runc-binary.

# shellcheck disable=SC2154 # status and output are set by bats' run
CTRD_DIR=$ENGINES_TMP/ctrd
CTRD_SOCK=$CTRD_DIR/c.sock
CTRD_NS=runcr-test
CTR=(ctr --address "$CTRD_SOCK" --namespace "$CTRD_NS")

# Starts containerd with tests/engines/containerd-config.toml (paths filled
# in) and waits for its socket; once per file.
containerd_start() {
	engines_setup_bin
	mkdir -p "$CTRD_DIR"/{root,state}
	sed -e "s|@ROOT@|$CTRD_DIR/root|g" -e "s|@STATE@|$CTRD_DIR/state|g" -e "s|@SOCK@|$CTRD_SOCK|g" \
		"$ENGINES_DIR/containerd-config.toml" >"$CTRD_DIR/config.toml"
	# containerd unpacks a checkpoint to restore from into a temp dir
	# (ctrd-checkpoint*, under $XDG_RUNTIME_DIR, else $TMPDIR) that it never
	# removes: keep those in the test's dir, not in /tmp.
	mkdir -p "$CTRD_DIR/tmp"
	TMPDIR=$CTRD_DIR/tmp XDG_RUNTIME_DIR=$CTRD_DIR/tmp \
		containerd --config "$CTRD_DIR/config.toml" >"$CTRD_DIR/containerd.log" 2>&1 &
	echo $! >"$CTRD_DIR/pid"
	local i
	for ((i = 0; i < 100; i++)); do
		"${CTR[@]}" version >/dev/null 2>&1 && break
		sleep 0.2
	done
	"${CTR[@]}" version >/dev/null || {
		tail -20 "$CTRD_DIR/containerd.log" >&2
		return 1
	}
	engines_image_tar
	"${CTR[@]}" images import "$IMAGE_TAR" >&2
}

# Stops the containerd containerd_start started (by its pid) after removing
# what is left in the namespace.
containerd_stop() {
	[ -f "$CTRD_DIR/pid" ] || return 0
	local t c
	for t in $("${CTR[@]}" tasks ls -q 2>/dev/null); do
		timeout 30 "${CTR[@]}" tasks kill -s SIGKILL "$t" >/dev/null 2>&1 || true
		sleep 0.3
		timeout 30 "${CTR[@]}" tasks delete -f "$t" >/dev/null 2>&1 || true
	done
	for c in $("${CTR[@]}" containers ls -q 2>/dev/null); do
		timeout 30 "${CTR[@]}" containers delete "$c" >/dev/null 2>&1 || true
	done
	stop_by_pidfile "$CTRD_DIR/pid" 50
	# Shims outlive containerd by design; stop the ones of our socket.
	kill_own -f "containerd-shim-runc-v2 -namespace $CTRD_NS" "$CTRD_SOCK"
	engines_unmount_all
}

# ctr under bats' run with a time limit.
ctr_() {
	trun "${CTR[@]}" "$@"
}

# Starts the workload as container/task $1 from the test image, with runcr.
ctr_run_workload() {
	ctr_ run -d --runc-binary "$ENGINES_BIN/runcr" "$IMAGE_REF" "$1" sh -c "$WORKLOAD"
	[ "$status" -eq 0 ] || fail "ctr run failed"
}

# Reader for wait_state/assert_continues: the state via `ctr tasks exec`.
ctr_reader() {
	timeout 30 "${CTR[@]}" tasks exec --exec-id "rd$RANDOM$RANDOM" "$CTR_ID" cat /tmp/state
}
