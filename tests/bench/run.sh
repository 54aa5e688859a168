#!/usr/bin/env bash
# `make bench`: checkpoint/restore of the same workload under runcr and under
# runc, alternating, on tmpfs, with Go's benchmark harness
# (tests/bench/bench_test.go). Prints a table of medians with the runcr/runc
# ratio and writes it as JSON; see BENCHMARKS.md.
#
# Usage (as root): RUNCR=/abs/runcr ROOTFS=/abs/rootfs bash tests/bench/run.sh
#
# Environment:
#   RUNCR         runcr binary (required)
#   ROOTFS        busybox rootfs from tests/setup/make-rootfs.sh (required)
#   RUNC          the runc to compare with (default: runc on PATH)
#   BENCH_CRIU    criu binary both runtimes use (default: `command -v criu`).
#                 It is offered to both as "criu", first on PATH.
#   BENCH_RUNS    measured runs per runtime and size (default 7, at least 5)
#   BENCH_SIZES   MiB, comma-separated (default 16,256,1024)
#   BENCH_WARMUP  unmeasured cycles per runtime and size first (default 1)
#   BENCH_OUT     where results.json, results.md and bench.txt go
#                 (default tests/.build/bench)
#   BENCH_TRACE   0: don't trace the runtimes, so no peak RSS (to check
#                 that the tracing doesn't change the times)
#   BENCH_DOWNTIME 0: skip the extra --leave-running checkpoint per cycle
#                 that measures how long each runtime stops the container
#                 (the "stopped" rows and CRIU's phases; downtime_test.go)
#   BENCH_EXPORT  1 (default): afterwards, checkpoint --export against a plain
#                 checkpoint (BenchmarkExport, tests/bench/export_test.go);
#                 0: skip it; only: run only that
#   BENCH_EXPORT_RUNS  its runs of each kind (default 5, at least 3)
#   BENCH_EXPORT_MIB, BENCH_EXPORT_COMPRESS  its size (1024) and --compress (zstd)
#   BENCH_DIGEST  1 (default): afterwards, what the image digests cost:
#                 hashing at checkpoint and verifying at restore against
#                 the checkpoint and restore times (BenchmarkDigest,
#                 tests/bench/digest_test.go); 0: skip it; only: run only that
#   BENCH_DIGEST_RUNS, BENCH_DIGEST_MIB  its runs (default 5) and size (1024)
#   BENCH_MIGRATE 1 (default): afterwards, runcr migrate over exec: (to
#                 runcr receive on this host) against a plain checkpoint +
#                 restore of the same container: downtime and total time
#                 (BenchmarkMigrate, tests/bench/migrate_test.go); 0: skip
#                 it; only: run only that
#   BENCH_MIGRATE_RUNS, BENCH_MIGRATE_MIB, BENCH_MIGRATE_COMPRESS  its runs
#                 (default 5), sizes (256,1024) and --compress (zstd)
#
# runc is given CRIU_FAULT=130 exactly when `runcr check` says hardware
# breakpoints don't fire here (CRIU hangs on dump otherwise); runcr decides
# that by itself, so CRIU_FAULT is removed from its environment.
set -euo pipefail
# shellcheck source=tests/bench/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

BENCH_RUNS=${BENCH_RUNS:-7}
[ "$BENCH_RUNS" -ge 5 ] 2>/dev/null || die "BENCH_RUNS must be at least 5"
bench_init
bench_banner
export BENCH_OUT
# BENCH_EXPORT, BENCH_DIGEST or BENCH_MIGRATE=only runs that part alone.
ONLY=
for part in EXPORT DIGEST MIGRATE; do
	v=BENCH_$part
	[ "${!v:-1}" = only ] && ONLY=$part
done
# part_runs PART: whether MAIN (the runcr/runc table), EXPORT, DIGEST or
# MIGRATE runs.
part_runs() {
	if [ -n "$ONLY" ]; then
		[ "$1" = "$ONLY" ]
		return
	fi
	local v=BENCH_$1
	[ "$1" = MAIN ] || [ "${!v:-1}" != 0 ]
}
if part_runs MAIN; then
	printf 'bench: %s runs per runtime and size, sizes %s MiB, images on tmpfs %s\n' \
		"$BENCH_RUNS" "${BENCH_SIZES:-16,256,1024}" "$WORK"
	bench_test "$BENCH_RUNS" 2>&1 | tee "$BENCH_OUT/bench.txt"
fi
if part_runs EXPORT; then
	BENCH_EXPORT_RUNS=${BENCH_EXPORT_RUNS:-5}
	[ "$BENCH_EXPORT_RUNS" -ge 3 ] 2>/dev/null || die "BENCH_EXPORT_RUNS must be at least 3"
	printf 'bench: checkpoint --export vs plain checkpoint, %s runs each, %s MiB\n' "$BENCH_EXPORT_RUNS" "${BENCH_EXPORT_MIB:-1024}"
	BENCH_PATTERN='^BenchmarkExport$' bench_test "$BENCH_EXPORT_RUNS" 2>&1 | tee "$BENCH_OUT/export.txt"
fi
if part_runs DIGEST; then
	BENCH_DIGEST_RUNS=${BENCH_DIGEST_RUNS:-5}
	[ "$BENCH_DIGEST_RUNS" -ge 3 ] 2>/dev/null || die "BENCH_DIGEST_RUNS must be at least 3"
	printf 'bench: image digests, hashing and verifying against checkpoint and restore, %s runs, %s MiB\n' "$BENCH_DIGEST_RUNS" "${BENCH_DIGEST_MIB:-1024}"
	BENCH_PATTERN='^BenchmarkDigest$' bench_test "$BENCH_DIGEST_RUNS" 2>&1 | tee "$BENCH_OUT/digest.txt"
fi
if part_runs MIGRATE; then
	BENCH_MIGRATE_RUNS=${BENCH_MIGRATE_RUNS:-5}
	[ "$BENCH_MIGRATE_RUNS" -ge 3 ] 2>/dev/null || die "BENCH_MIGRATE_RUNS must be at least 3"
	printf 'bench: migrate over exec: vs checkpoint + restore, %s runs each, %s MiB\n' "$BENCH_MIGRATE_RUNS" "${BENCH_MIGRATE_MIB:-256,1024}"
	# The plain cycles' extra --leave-running checkpoint is not part of
	# this comparison.
	BENCH_DOWNTIME=0 BENCH_PATTERN='^BenchmarkMigrate$' bench_test "$BENCH_MIGRATE_RUNS" 2>&1 | tee "$BENCH_OUT/migrate.txt"
fi
