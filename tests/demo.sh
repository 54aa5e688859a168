#!/usr/bin/env bash
# runcr's "main job" demo: run a container, checkpoint it, restore it, and
# show that it carries on from where it was instead of starting over.
#
# Usage (as root):  RUNCR=/abs/path/runcr ROOTFS=/abs/path/rootfs bash tests/demo.sh
#
# RUNCR  the runtime to demonstrate (runcr; any runc-compatible binary works)
# ROOTFS a busybox root filesystem (see tests/setup/make-rootfs.sh)
#
# Everything lives in a fresh temporary directory, including the runtime's
# state (--root), so no other container on the host is seen or touched.
# The container, its state and the temporary files are removed on exit,
# whether the demo succeeds or fails. Exits non-zero if any step fails or
# if the restored container did not carry on from where it was.
set -uo pipefail

RUNCR=${RUNCR:-}
ROOTFS=${ROOTFS:-}

# ---------------------------------------------------------------- output ----
if [ -t 1 ]; then
	B=$'\e[1m' G=$'\e[32m' R=$'\e[31m' D=$'\e[2m' N=$'\e[0m'
else
	B='' G='' R='' D='' N=''
fi
step_no=0
step() {
	step_no=$((step_no + 1))
	printf '\n%s==> Step %d: %s%s\n' "$B" "$step_no" "$*" "$N"
}
say() { printf '    %s\n' "$*"; }
ok() { printf '    %sOK%s  %s\n' "$G" "$N" "$*"; }
show_cmd() { printf '    %s$ %s%s\n' "$D" "$*" "$N"; }
fail() {
	printf '\n%sDEMO FAILED:%s %s\n' "$R$B" "$N" "$*" >&2
	exit 1
}
# Prints a file indented, for error reports.
dump_file() {
	local title=$1 file=$2 lines=${3:-40}
	[ -s "$file" ] || return 0
	printf '    --- %s (%s) ---\n' "$title" "$file" >&2
	tail -n "$lines" "$file" | sed 's/^/    | /' >&2
}

# --------------------------------------------------------- preconditions ----
[ "$(id -u)" -eq 0 ] || fail "must run as root (CRIU needs it)"
[ -n "$RUNCR" ] || fail "set RUNCR to the runtime binary, e.g. RUNCR=\$PWD/runcr"
[ -x "$RUNCR" ] || fail "RUNCR=$RUNCR is not an executable file"
[ -n "$ROOTFS" ] || fail "set ROOTFS to a busybox root filesystem directory"
[ -x "$ROOTFS/bin/sh" ] || fail "ROOTFS=$ROOTFS has no /bin/sh; build one with tests/setup/make-rootfs.sh"
for tool in jq md5sum seq sed; do
	command -v "$tool" >/dev/null || fail "$tool is required (run tests/setup/install-deps.sh)"
done

RT=$(basename "$RUNCR")
ID="runcr-demo-$$"
TMP=$(mktemp -d /tmp/runcr-demo.XXXXXX) || fail "mktemp failed"
STATE_ROOT=$TMP/state      # private --root: only this demo's container lives here
BUNDLE=$TMP/bundle
IMAGE=$TMP/checkpoint      # CRIU image directory
STATE_FILE=$BUNDLE/rootfs/demo-state
declare -a RT_ARGS=(--root "$STATE_ROOT")

# CRIU steps get a time limit so a CRIU that hangs fails the demo instead.
CRIU_TIMEOUT=${DEMO_CRIU_TIMEOUT:-120}

rt() { "$RUNCR" "${RT_ARGS[@]}" "$@"; }
rt_limited() { timeout -k 10 "$CRIU_TIMEOUT" "$RUNCR" "${RT_ARGS[@]}" "$@"; }
# Explains a CRIU step that ran out of time. Usage: explain_timeout LOG
explain_timeout() {
	local log=$1
	printf '    %s did not finish within %ss; it was stopped.\n' "$RT" "$CRIU_TIMEOUT" >&2
	if grep -q 'Waiting for .* to trap' "$log" 2>/dev/null &&
		[ "$(grep -v '^pie:' "$log" | tail -n 1 | grep -c 'Sent msg to daemon\|to trap')" -gt 0 ]; then
		printf '    CRIU hung waiting for a task to trap (see the end of %s above):\n' "$log" >&2
		printf '    it stops tasks with x86 hardware breakpoints, which never fire on some\n' >&2
		printf '    VMs. CRIU_FAULT=130 in its environment makes CRIU work without them\n' >&2
		printf '    (see DEVELOPERS.md, "Host limits").\n' >&2
	fi
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	# The container may be running, half-restored or already gone.
	rt kill "$ID" KILL >/dev/null 2>&1
	rt delete --force "$ID" >/dev/null 2>&1
	if [ -e "$STATE_ROOT/$ID" ]; then
		# The runtime under test could not clean up; try plain runc on the
		# same private root so nothing is left behind.
		local runc
		runc=$(command -v runc || true)
		[ -n "$runc" ] && "$runc" --root "$STATE_ROOT" delete --force "$ID" >/dev/null 2>&1
	fi
	rm -rf "$TMP"
	if [ "$rc" -eq 0 ]; then
		printf '\n%sDemo passed:%s the restored container carried on where it left off.\n' "$G$B" "$N"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Reads the container's state file: "counter=N mem=OK|BAD token=UUID".
read_state() { cat "$STATE_FILE" 2>/dev/null; }
field() { # field NAME "line"
	local name=$1 line=$2 kv
	for kv in $line; do
		[ "${kv%%=*}" = "$name" ] && { printf '%s\n' "${kv#*=}"; return 0; }
	done
	return 1
}
wait_for_state() { # wait until the state file exists (up to ~10 s)
	for _ in $(seq 50); do
		[ -s "$STATE_FILE" ] && return 0
		sleep 0.2
	done
	return 1
}

# The container's stdio must be pipes: CRIU cannot dump a process whose
# stdin/stdout/stderr is a host file or a terminal. stdin is a pipe this
# script holds open (nothing is ever written to it); stdout and stderr are
# pipes drained by `cat` into log files, so runtime errors are not lost.
# These are set up again for the restore: the restored process gets new pipes.
exec {pipe}<> <(:)
# shellcheck disable=SC2034,SC2094 # both ends of one pipe; in_w only holds it open
exec {in_r}</proc/self/fd/$pipe {in_w}>/proc/self/fd/$pipe
exec {pipe}>&-

# Runs a runtime command with the container's stdio pipes attached.
# Usage: rt_with_pipes LOG-PREFIX ARGS...
rt_with_pipes() {
	local prefix=$1
	shift
	rt_limited "$@" <&"$in_r" > >(cat >>"$prefix.stdout") 2> >(cat >>"$prefix.stderr")
}

# ----------------------------------------------------------------- bundle ----
step "Make an OCI bundle in $TMP"
say "runtime under test: $RUNCR"
"$RUNCR" --version 2>/dev/null | head -n 1 | sed 's/^/    /'
say "(with runcr, spec/run/state/list/kill/delete are passed through to runc;"
say " checkpoint and restore are runcr's own)"
mkdir -p "$BUNDLE" "$STATE_ROOT" || fail "mkdir"
# A private copy of the rootfs, so the container can write its state file.
cp -a "$ROOTFS" "$BUNDLE/rootfs" || fail "could not copy $ROOTFS"
show_cmd "$RT spec --bundle $BUNDLE"
rt spec --bundle "$BUNDLE" || fail "$RT spec failed"

# A known string the container holds in memory; its checksum is computed
# here, on the host, and given to the container, which checks it every tick.
MEM_CMD='seq 1 10000 | sed "s/^/runcr-demo-memory-line-/"'
EXPECT_MD5=$(eval "$MEM_CMD" | md5sum | cut -d' ' -f1)

# The workload: every ~0.2 s increment a counter kept in a shell variable
# (that is, in process memory) and write it with the memory check result and
# a token chosen at start-up into /demo-state. If the container were started
# afresh instead of restored, the counter would begin again at 1 and the
# token would change.
# shellcheck disable=SC2016
SCRIPT='
mem=$('"$MEM_CMD"')
token=$(cat /proc/sys/kernel/random/uuid)
echo "demo workload started, token $token"
i=0
while :; do
	i=$((i + 1))
	set -- $(echo "$mem" | md5sum)
	if [ "$1" = "$EXPECT_MD5" ]; then m=OK; else m=BAD; fi
	echo "counter=$i mem=$m token=$token" >/demo-state.tmp
	mv /demo-state.tmp /demo-state
	sleep 0.2
done'

jq --arg script "$SCRIPT" --arg md5 "$EXPECT_MD5" '
	.process.terminal = false
	| .process.args = ["sh", "-c", $script]
	| .process.env += ["EXPECT_MD5=" + $md5]
	| .root.readonly = false
	| .hostname = "runcr-demo"' \
	"$BUNDLE/config.json" >"$BUNDLE/config.json.new" &&
	mv "$BUNDLE/config.json.new" "$BUNDLE/config.json" || fail "editing config.json with jq failed"
ok "config.json: terminal=false, args=sh -c <counter loop>, writable rootfs"
say "memory check string: 10000 lines 'runcr-demo-memory-line-N', md5 $EXPECT_MD5"

# -------------------------------------------------------------------- run ----
step "Run the container detached, stdio on pipes"
show_cmd "$RT --root $STATE_ROOT run --detach --bundle $BUNDLE $ID"
rc=0
rt_with_pipes "$TMP/run" run --detach --bundle "$BUNDLE" "$ID" || rc=$?
if [ "$rc" -ne 0 ]; then
	sleep 0.2
	dump_file "runtime stderr" "$TMP/run.stderr"
	fail "$RT run failed (exit status $rc)"
fi
wait_for_state || {
	dump_file "container stderr" "$TMP/run.stderr"
	fail "the container never wrote $STATE_FILE"
}
say "$(rt state "$ID" | jq -r '"state: id=\(.id) status=\(.status) pid=\(.pid)"')"

say "counter as the container writes it (/demo-state inside the container):"
before=''
for _ in 1 2 3 4 5 6; do
	before=$(read_state)
	say "  $before"
	sleep 0.2
done
# Let it count a little further so a restart (counter back at 1) is obvious.
for _ in $(seq 50); do
	[ "$(field counter "$(read_state)")" -ge 8 ] 2>/dev/null && break
	sleep 0.2
done
[ "$(field counter "$(read_state)")" -ge 8 ] 2>/dev/null || fail "the container stopped counting: $(read_state)"
TOKEN=$(field token "$(read_state)")
[ "$(field mem "$(read_state)")" = OK ] || fail "memory check is not OK before the checkpoint: $(read_state)"
ok "the container is counting; memory check OK"

# ------------------------------------------------------------- checkpoint ----
step "Checkpoint the container into $IMAGE"
show_cmd "$RT --root $STATE_ROOT checkpoint --image-path $IMAGE --work-path $TMP/dump-work $ID"
rc=0
rt_limited checkpoint --image-path "$IMAGE" --work-path "$TMP/dump-work" "$ID" || rc=$?
if [ "$rc" -ne 0 ]; then
	dump_file "CRIU dump.log" "$TMP/dump-work/dump.log" 20
	[ "$rc" -eq 124 ] && explain_timeout "$TMP/dump-work/dump.log"
	fail "$RT checkpoint failed (exit status $rc)"
fi
AT_CHECKPOINT=$(read_state)
N_CHECKPOINT=$(field counter "$AT_CHECKPOINT")
ok "checkpoint written: $(find "$IMAGE" -type f | wc -l) image files, $(du -sh "$IMAGE" | cut -f1)"
say "last state written before the checkpoint: $AT_CHECKPOINT"

step "Show the container is gone"
show_cmd "$RT --root $STATE_ROOT state $ID"
if out=$(rt state "$ID" 2>&1); then
	say "$out"
	fail "the container still exists after checkpoint (it should have been destroyed)"
fi
say "$out"
show_cmd "$RT --root $STATE_ROOT list"
rt list | sed 's/^/    /'
sleep 1
[ "$(read_state)" = "$AT_CHECKPOINT" ] || fail "state file changed after checkpoint: something is still running"
ok "no such container, and the counter has stopped at $N_CHECKPOINT"

# ---------------------------------------------------------------- restore ----
step "Restore the container from $IMAGE (detached, new stdio pipes)"
show_cmd "$RT --root $STATE_ROOT restore --detach --bundle $BUNDLE --image-path $IMAGE --work-path $TMP/restore-work $ID"
rc=0
rt_with_pipes "$TMP/restore" restore --detach --bundle "$BUNDLE" --image-path "$IMAGE" \
	--work-path "$TMP/restore-work" "$ID" || rc=$?
if [ "$rc" -ne 0 ]; then
	sleep 0.2
	dump_file "runtime stderr" "$TMP/restore.stderr"
	dump_file "CRIU restore.log" "$TMP/restore-work/restore.log" 20
	[ "$rc" -eq 124 ] && explain_timeout "$TMP/restore-work/restore.log"
	fail "$RT restore failed (exit status $rc)"
fi
say "$(rt state "$ID" | jq -r '"state: id=\(.id) status=\(.status) pid=\(.pid)"')"

step "Show the counter carries on from $N_CHECKPOINT"
# Wait for the restored process to write again.
for _ in $(seq 50); do
	[ "$(read_state)" != "$AT_CHECKPOINT" ] && break
	sleep 0.2
done
[ "$(read_state)" != "$AT_CHECKPOINT" ] || fail "the restored container is not writing its state file"
min=''
for _ in 1 2 3 4 5 6; do
	now=$(read_state)
	say "  $now"
	n=$(field counter "$now")
	[ -z "$min" ] && min=$n
	[ "$n" -gt "$N_CHECKPOINT" ] ||
		fail "counter restarted: $n after restore, $N_CHECKPOINT at checkpoint (the workload began again)"
	[ "$(field mem "$now")" = OK ] || fail "memory check failed after restore: $now"
	[ "$(field token "$now")" = "$TOKEN" ] ||
		fail "token changed ($TOKEN -> $(field token "$now")): the workload was started afresh, not restored"
	sleep 0.2
done
if [ "$min" -gt $((N_CHECKPOINT + 3)) ]; then
	fail "counter jumped from $N_CHECKPOINT to $min: not a continuation"
fi
ok "counter continued from $N_CHECKPOINT to $min and on to $n (not from 1)"
ok "same start-up token $TOKEN: the same process, not a new one"
ok "memory check OK: the 10000-line string survived in memory"

step "Clean up"
show_cmd "$RT --root $STATE_ROOT kill $ID KILL && $RT --root $STATE_ROOT delete --force $ID"
rt kill "$ID" KILL >/dev/null 2>&1
rt delete --force "$ID" || fail "$RT delete failed"
ok "container deleted; removing $TMP"
