# shellcheck shell=bash
# Shared set-up of tests/bench/run.sh and tests/bench/profile.sh; source it.
#
# In:  RUNCR, ROOTFS (required); RUNC, BENCH_CRIU, BENCH_OUT (optional).
# Out: REPO, RUNC, BENCH_CRIU (resolved), BENCH_OUT, MEMHOG, WORK (a private
#      tmpfs, unmounted on exit with whatever containers are left in it),
#      HWBP (true/false), BENCH_RUNC_ENV ("CRIU_FAULT=130" or empty),
#      CRIU_BIN (a directory whose "criu" is BENCH_CRIU).

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

die() {
	printf 'bench: %s\n' "$*" >&2
	exit 1
}

bench_init() {
	[ "$(id -u)" -eq 0 ] || die "must run as root (CRIU needs it)"
	: "${RUNCR:?set RUNCR to the runcr binary}"
	: "${ROOTFS:?set ROOTFS to the busybox rootfs (make rootfs)}"
	RUNC=${RUNC:-$(command -v runc || true)}
	BENCH_OUT=${BENCH_OUT:-$REPO/tests/.build/bench}
	local tool
	for tool in go jq mount umount mountpoint; do
		command -v "$tool" >/dev/null || die "$tool is required"
	done
	[ -x "$RUNCR" ] || die "RUNCR=$RUNCR is not executable"
	[ -x "$ROOTFS/bin/sh" ] || die "ROOTFS=$ROOTFS has no /bin/sh (make rootfs)"
	{ [ -n "$RUNC" ] && [ -x "$RUNC" ]; } || die "no runc found; set RUNC"
	case $("$RUNC" --version 2>/dev/null) in
	"runc version"*) ;;
	*) die "RUNC=$RUNC is not runc" ;;
	esac

	# The criu both runtimes run: as given, or the first on PATH.
	BENCH_CRIU=${BENCH_CRIU:-$(command -v criu || true)}
	{ [ -n "$BENCH_CRIU" ] && [ -x "$BENCH_CRIU" ]; } || die "no criu found; set BENCH_CRIU"
	BENCH_CRIU=$(readlink -f "$BENCH_CRIU")
	if [ "$(head -c 2 "$BENCH_CRIU")" = '#!' ]; then
		printf 'bench: WARNING: %s is a script, not CRIU itself: its start-up is measured too\n' "$BENCH_CRIU" >&2
		printf 'bench:          (set BENCH_CRIU to the real binary)\n' >&2
	fi

	mkdir -p "$BENCH_OUT"
	MEMHOG=$BENCH_OUT/memhog
	CGO_ENABLED=0 go build -C "$REPO" -trimpath -o "$MEMHOG" ./tests/bench/memhog

	WORK=$(mktemp -d /tmp/runcr-bench.XXXXXX)
	trap bench_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	# Images (and bundles, and the runtimes' state) live on a tmpfs of
	# the bench's own; it only takes the memory that is written to it.
	mount -t tmpfs -o mode=0700,size=8g runcr-bench "$WORK"
	CRIU_BIN=$WORK/criu-bin
	mkdir -p "$CRIU_BIN"
	ln -s "$BENCH_CRIU" "$CRIU_BIN/criu"

	# runc gets CRIU_FAULT=130 exactly where runcr says hardware
	# breakpoints don't fire (runcr decides that for itself).
	HWBP=$(PATH=$CRIU_BIN:$PATH "$RUNCR" check --format json | jq -r .hardware_breakpoints)
	case $HWBP in
	true) BENCH_RUNC_ENV= ;;
	false) BENCH_RUNC_ENV=CRIU_FAULT=130 ;;
	*) die "\`runcr check --format json\` has no hardware_breakpoints true/false (got '$HWBP')" ;;
	esac
}

bench_cleanup() {
	local rc=$? id
	trap - EXIT INT TERM
	if [ -d "$WORK/state" ]; then
		for id in $("$RUNC" --root "$WORK/state" list -q 2>/dev/null); do
			"$RUNC" --root "$WORK/state" delete --force "$id" >/dev/null 2>&1 || true
		done
	fi
	if mountpoint -q "$WORK"; then
		umount "$WORK" 2>/dev/null || umount -l "$WORK"
	fi
	rmdir "$WORK" 2>/dev/null || true
	exit "$rc"
}

first_line() { "$@" 2>&1 | sed -n 1p; }

bench_banner() {
	printf 'bench: runcr %s (%s)\n' "$RUNCR" "$(first_line "$RUNCR" --version)"
	printf 'bench: runc  %s (%s)\n' "$RUNC" "$(first_line "$RUNC" --version)"
	printf 'bench: criu  %s (%s)\n' "$BENCH_CRIU" "$(first_line "$BENCH_CRIU" --version)"
	printf 'bench: hardware breakpoints fire: %s; added to runc'"'"'s environment: %s\n' "$HWBP" "${BENCH_RUNC_ENV:-nothing}"
}

# bench_test RUNS [WRAPPER...]: the benchmark harness (a test binary built
# from tests/bench), optionally under WRAPPER, with the BENCH_* environment
# tests/bench/bench_test.go reads. BENCH_PATTERN picks another benchmark.
bench_test() {
	local runs=$1
	shift
	[ -x "$WORK/bench.test" ] || go test -C "$REPO" -c -o "$WORK/bench.test" ./tests/bench
	BENCH_SOURCE=$(git -C "$REPO" describe --tags --always --dirty 2>/dev/null || echo unknown) \
		BENCH_RUNCR=$RUNCR BENCH_RUNC=$RUNC BENCH_ROOTFS=$ROOTFS BENCH_MEMHOG=$MEMHOG \
		BENCH_WORKDIR=$WORK BENCH_CRIU=$BENCH_CRIU BENCH_RUNC_ENV=$BENCH_RUNC_ENV \
		"$@" "$WORK/bench.test" -test.count 1 -test.timeout 60m -test.run '^$' \
		-test.bench "${BENCH_PATTERN:-^BenchmarkCheckpointRestore\$}" -test.benchtime "${runs}x"
}
