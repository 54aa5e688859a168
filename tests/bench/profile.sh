#!/usr/bin/env bash
# Where the fixed cost of a checkpoint and a restore goes, at 16 MiB, for
# runcr and for runc. Findings are in BENCHMARKS.md; this regenerates them.
#
# Usage (as root): RUNCR=/abs/runcr ROOTFS=/abs/rootfs bash tests/bench/profile.sh
#
# 1. Process timelines: every checkpoint and restore runs under
#    `perf record -a` of the sched_process_{fork,exec,exit} tracepoints
#    (no ptrace, so CRIU is undisturbed); tests/bench/timeline turns them
#    into each run's process tree and per-process medians: the runtime,
#    the CRIU it runs for a VERSION request, the CRIU that dumps/restores,
#    and every process CRIU runs (iptables, tar, gzip...).
# 2. CRIU's own logs: time to the end of its start-up (kernel feature
#    detection, "kerndat") and stats-dump/stats-restore.
# 3. A/B experiments through the benchmark harness at 16 MiB: the same
#    cycle with one cause of fixed cost removed at a time.
#
# Environment: as tests/bench/run.sh, plus PROFILE_RUNS (default 7),
# PROFILE_OUT (default tests/.build/bench/profile) and PROFILE_EXPERIMENTS
# (0 skips part 3).
set -euo pipefail
# shellcheck source=tests/bench/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

PROFILE_RUNS=${PROFILE_RUNS:-7}
command -v perf >/dev/null || die "perf is required (linux-perf)"
bench_init
PROFILE_OUT=${PROFILE_OUT:-$BENCH_OUT/profile}
rm -rf "$PROFILE_OUT"
mkdir -p "$PROFILE_OUT"
go build -C "$REPO" -o "$WORK/timeline" ./tests/bench/timeline
bench_banner | tee "$PROFILE_OUT/summary.txt"
say() { printf '%s\n' "$*" | tee -a "$PROFILE_OUT/summary.txt"; }

# ------------------------------------------------------------ timelines ----
declare -A BIN=([runcr]=$RUNCR [runc]=$RUNC)
declare -A EXTRA=([runcr]="" [runc]=$BENCH_RUNC_ENV)
declare -A FD CHECK TOKEN
ST=
RT_CMD=()
STATE=$WORK/state
MIB=16

# rt RT: sets RT_CMD to runtime RT, run with the environment the bench gives
# it, on the profile's state root (an array, so perf can exec it).
rt() {
	# shellcheck disable=SC2206 # EXTRA holds zero or more VAR=value words
	RT_CMD=(env -u CRIU_FAULT PATH="$CRIU_BIN:$PATH" ${EXTRA[$1]} "${BIN[$1]}" --root "$STATE")
}

state_of() { cat "$WORK/$1/bundle/rootfs/bench-state" 2>/dev/null || true; }
field() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" <<<"$2"; }

wait_check() { # wait_check RT N: waits for check N, leaves the state in ST
	local deadline=$((SECONDS + 60))
	while [ $SECONDS -lt $deadline ]; do
		ST=$(state_of "$1")
		[ "$(field check "$ST")" = "$2" ] && return 0
		sleep 0.01
	done
	die "$1: workload never reported check $2 (state: $(state_of "$1"))"
}

setup() { # setup RT
	local rt=$1 dir=$WORK/$1 fd
	mkdir -p "$dir/bundle"
	cp -a "$ROOTFS" "$dir/bundle/rootfs"
	cp "$MEMHOG" "$dir/bundle/rootfs/memhog"
	"$RUNC" spec --bundle "$dir/bundle"
	jq --arg w "exec /memhog -mib $MIB -seed $RANDOM -state /bench-state" \
		'.root.readonly=false | .process.terminal=false | .process.args=["/bin/sh","-c",$w]' \
		"$dir/bundle/config.json" >"$dir/config.json" && mv "$dir/config.json" "$dir/bundle/config.json"
	exec {fd}<> <(:)
	FD[$rt]=$fd
	rt "$rt"
	"${RT_CMD[@]}" run -d --bundle "$dir/bundle" "prof-$rt" <&"$fd" >&"$fd" 2>&"$fd"
	wait_check "$rt" 0
	TOKEN[$rt]=$(field token "$ST")
	CHECK[$rt]=0
}

# traced OUT CMD...: CMD under perf, its sched events in OUT.txt and its
# pid in OUT.pid (other processes may run the same binary meanwhile).
traced() {
	local out=$1
	shift
	# shellcheck disable=SC2016 # $$ and $@ are the inner shell's
	perf record -q -o "$out.data" -e sched:sched_process_fork -e sched:sched_process_exec \
		-e sched:sched_process_exit -a -- sh -c 'echo $$ >"$0"; exec "$@"' "$out.pid" "$@"
	perf script -i "$out.data" >"$out.txt" 2>/dev/null
	rm -f "$out.data"
}

cycle() { # cycle RT I
	local rt=$1 i=$2 dir=$WORK/$1 fd=${FD[$1]} pid
	rm -rf "$dir/images"
	rt "$rt"
	traced "$PROFILE_OUT/$rt-checkpoint-$i" "${RT_CMD[@]}" checkpoint --image-path "$dir/images" "prof-$rt"
	cp "$dir/images/dump.log" "$PROFILE_OUT/$rt-dump-$i.log"
	cp "$dir/images/stats-dump" "$PROFILE_OUT/$rt-stats-dump-$i"
	traced "$PROFILE_OUT/$rt-restore-$i" "${RT_CMD[@]}" restore -d --bundle "$dir/bundle" --image-path "$dir/images" --pid-file "$dir/pid" "prof-$rt" \
		<&"$fd" >&"$fd" 2>&"$fd"
	cp "$dir/images/restore.log" "$PROFILE_OUT/$rt-restore-$i.log"
	pid=$(cat "$dir/pid")
	kill -USR1 "$pid"
	CHECK[$rt]=$((CHECK[$rt] + 1))
	wait_check "$rt" "${CHECK[$rt]}"
	{ [ "$(field result "$ST")" = OK ] && [ "$(field token "$ST")" = "${TOKEN[$rt]}" ]; } ||
		die "$rt: restore broke the workload: $ST"
}

say ""
say "== 1. process timelines ($PROFILE_RUNS checkpoint+restore cycles each, $MIB MiB, alternating) =="
setup runcr
setup runc
cycle runcr 0 # warm-up, not counted
cycle runc 0
rm -f "$PROFILE_OUT"/*-0.txt "$PROFILE_OUT"/*-0.pid "$PROFILE_OUT"/*-0.log "$PROFILE_OUT"/*-stats-dump-0
for i in $(seq "$PROFILE_RUNS"); do
	if [ $((i % 2)) -eq 1 ]; then cycle runcr "$i"; cycle runc "$i"; else cycle runc "$i"; cycle runcr "$i"; fi
done
for rt in runcr runc; do
	for op in checkpoint restore; do
		runs=()
		for i in $(seq "$PROFILE_RUNS"); do
			runs+=("$PROFILE_OUT/$rt-$op-$i.txt:$(cat "$PROFILE_OUT/$rt-$op-$i.pid")")
		done
		"$WORK/timeline" -exec "${BIN[$rt]}" "${runs[@]}" >"$PROFILE_OUT/$rt-$op.timeline"
		say ""
		say "--- $rt $op: medians (ms from the runtime's exec) ---"
		sed -n '/^# medians/,$p' "$PROFILE_OUT/$rt-$op.timeline" | tee -a "$PROFILE_OUT/summary.txt"
	done
done

# ------------------------------------------------------------ CRIU logs ----
# Milliseconds from CRIU's start to the first line matching RE, per log.
log_at() { # log_at RE FILE...
	local re=$1 f
	shift
	for f in "$@"; do
		awk -v re="$re" 'match($0, /^\(([0-9.]+)\)/) { t = substr($0, 2, RLENGTH - 2) } $0 ~ re { printf "%.1f\n", t * 1000; exit }' "$f"
	done
}
log_end() { # log_end FILE...: ms at CRIU's last log line
	local f
	for f in "$@"; do
		awk 'match($0, /^\(([0-9.]+)\)/) { t = substr($0, 2, RLENGTH - 2) } END { printf "%.1f\n", t * 1000 }' "$f"
	done
}
med() { sort -n | awk '{ a[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print a[(NR + 1) / 2]; else printf "%.1f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
say ""
say "== 2. CRIU logs (medians, ms from CRIU's start) =="
say "/run is $(stat -f -c %T /run); /run/criu.kdat $( [ -e /run/criu.kdat ] && echo exists || echo 'does not exist: CRIU detects kernel features on every run')"
for rt in runcr runc; do
	say "$rt dump:    start-up incl. kerndat $(log_at 'Dumping processes \\(pid' "$PROFILE_OUT/$rt"-dump-*.log | med)," \
		"mountpoints (tmpfs tar) $(for f in "$PROFILE_OUT/$rt"-dump-*.log; do a=$(log_at 'mnt: Dumping mountpoints' "$f"); b=$(log_at 'Dumping file-locks' "$f"); echo "$b - $a" | bc; done | med)," \
		"whole dump $(log_end "$PROFILE_OUT/$rt"-dump-*.log | med)"
	say "$rt restore: start-up incl. kerndat $(log_at 'Running pre-restore scripts' "$PROFILE_OUT/$rt"-restore-*.log | med)," \
		"whole restore $(log_end "$PROFILE_OUT/$rt"-restore-*.log | med)"
done

if [ "${PROFILE_EXPERIMENTS:-1}" = 0 ]; then
	say ""
	say "all of it is in $PROFILE_OUT"
	exit 0
fi

# ---------------------------------------------------------- experiments ----
# Each runs the benchmark harness at 16 MiB with one change to the runcr
# lane only, alternating with plain runc as in `make bench`: the runcr/runc
# ratio is what runcr would get by making that change itself.
say ""
say "== 3. A/B experiments at $MIB MiB: the runcr lane changed, runc as is (harness, medians of $PROFILE_RUNS) =="
experiment() { # experiment NAME [VAR=value...]
	local name=$1 out=$PROFILE_OUT/exp-$1
	shift
	mkdir -p "$out"
	(
		export BENCH_SIZES=$MIB BENCH_OUT=$out BENCH_TRACE=0
		for kv in "$@"; do
			export "${kv?}"
		done
		bench_test "$PROFILE_RUNS" >"$out/bench.txt" 2>&1
	) || {
		tail -n 30 "$out/bench.txt" >&2
		die "experiment $name failed"
	}
	jq -r --arg n "$name" '
		def med: sort | if length == 0 then 0 elif length % 2 == 1 then .[length / 2 | floor] else (.[length / 2 - 1] + .[length / 2]) / 2 end;
		.sizes[0].samples as $s | [.medians[] | select(.metric | test("wall"))] as $w |
		def r2: . * 100 | round / 100;
		"| \($n) | \($w[0].runcr | round) | \($w[0].runc | round) | \($w[0].ratio | r2) (\($w[0].paired_ratio_median | r2)) | \($w[1].runcr | round) | \($w[1].runc | round) | \($w[1].ratio | r2) (\($w[1].paired_ratio_median | r2)) | \($s.runcr.criu_dump_startup_ms | med | round) / \($s.runc.criu_dump_startup_ms | med | round) | \($s.runcr.criu_restore_startup_ms | med | round) / \($s.runc.criu_restore_startup_ms | med | round) |"' \
		"$out/results.json" >>"$PROFILE_OUT/experiments.md"
}
{
	printf '| experiment (runcr lane) | runcr ckpt ms | runc ckpt ms | ratio (paired) | runcr restore ms | runc restore ms | ratio (paired) | CRIU dump start-up ms, runcr / runc | CRIU restore start-up ms, runcr / runc |\n'
	printf '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n'
} >"$PROFILE_OUT/experiments.md"
printf 'network-lock nftables\n' >"$WORK/criu-nft.conf"
printf 'network-lock skip\n' >"$WORK/criu-skip.conf"
# CRIU keeps its kernel feature cache (/run/criu.kdat) only if /run is a
# tmpfs: kdat-wrap runs the runtime in a private mount namespace whose /run
# is a directory of the bench's tmpfs, kept from run to run (the warm-up
# cycle fills the cache). no-kdat-wrap is the same wrapping with /run left
# as it is: the cost of the wrapper alone.
mkdir -p "$WORK/kdat-run"
# shellcheck disable=SC2016 # $0 and $@ are the wrapper's
printf '#!/bin/sh\nexec unshare -m --propagation private sh -c '"'"'mount --bind "$0" /run && exec "$@"'"'"' %s "$@"\n' \
	"$WORK/kdat-run" >"$WORK/kdat-wrap"
printf '#!/bin/sh\nexec unshare -m --propagation private sh -c '"'"'mount --bind /run /run && exec "$@"'"'"' sh "$@"\n' \
	>"$WORK/no-kdat-wrap"
chmod +x "$WORK/kdat-wrap" "$WORK/no-kdat-wrap"

experiment baseline
experiment wrapper-only BENCH_RUNCR_WRAP="$WORK/no-kdat-wrap"
experiment kdat-cache BENCH_RUNCR_WRAP="$WORK/kdat-wrap"
experiment network-lock-nftables BENCH_RUNCR_CRIU_CONFIG="$WORK/criu-nft.conf"
experiment network-lock-skip BENCH_RUNCR_CRIU_CONFIG="$WORK/criu-skip.conf"
experiment kdat-cache+nftables BENCH_RUNCR_WRAP="$WORK/kdat-wrap" BENCH_RUNCR_CRIU_CONFIG="$WORK/criu-nft.conf"
tee -a "$PROFILE_OUT/summary.txt" <"$PROFILE_OUT/experiments.md"
say ""
say "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
say "all of it is in $PROFILE_OUT"
