#!/usr/bin/env bash
# Builds a minimal busybox root filesystem for the integration tests from
# Debian's busybox-static (no image download). Usage: make-rootfs.sh DIR
# Idempotent: does nothing when DIR was built from the same busybox binary.
set -euo pipefail

BUSYBOX=${BUSYBOX:-/bin/busybox}

log() { printf 'make-rootfs: %s\n' "$*" >&2; }

if [ $# -ne 1 ] || [ -z "$1" ]; then
	echo "usage: $0 ROOTFS_DIR" >&2
	exit 2
fi
dir=$1

if [ ! -x "$BUSYBOX" ]; then
	log "$BUSYBOX not found; install busybox-static"
	exit 1
fi
# A dynamically linked busybox would need the host's libc inside the rootfs.
if ! "$BUSYBOX" --list >/dev/null 2>&1 || ldd "$BUSYBOX" >/dev/null 2>&1; then
	log "$BUSYBOX is not a working static busybox; install busybox-static"
	exit 1
fi

sum=$(sha256sum "$BUSYBOX" | awk '{print $1}')
stamp=$dir/.busybox.sha256
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$sum" ] && [ -x "$dir/bin/busybox" ]; then
	log "$dir is up to date"
	exit 0
fi

log "building $dir from $BUSYBOX"
# Build next to the target and swap it in, so an interrupted run never
# leaves a half-built rootfs that looks complete.
parent=$(dirname "$dir")
mkdir -p "$parent"
tmp=$(mktemp -d "$parent/.rootfs.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

chmod 0755 "$tmp"
mkdir -p "$tmp"/{bin,sbin,usr/bin,usr/sbin,etc,root,tmp,proc,sys,dev,run,var/tmp}
chmod 1777 "$tmp/tmp" "$tmp/var/tmp"
chmod 0700 "$tmp/root"
install -m 0755 "$BUSYBOX" "$tmp/bin/busybox"

# Every applet goes into /bin: one directory on PATH is enough for tests.
while read -r applet; do
	[ "$applet" = busybox ] && continue
	ln -sf busybox "$tmp/bin/$applet"
done < <("$BUSYBOX" --list)

cat >"$tmp/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >"$tmp/etc/group" <<'EOF'
root:x:0:
tty:x:5:
nogroup:x:65534:
EOF
echo "runcr-test" >"$tmp/etc/hostname"
: >"$tmp/etc/hosts"
echo "127.0.0.1 localhost" >>"$tmp/etc/hosts"
echo "$sum" >"$tmp/.busybox.sha256"

rm -rf "$dir"
mv "$tmp" "$dir"
trap - EXIT
log "done: $(find "$dir/bin" -type l | wc -l) applets"
