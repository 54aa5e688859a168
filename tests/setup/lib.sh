# shellcheck shell=bash
# Shared by the install scripts. Source it after setting SCRIPT_NAME.

log() { printf '%s: %s\n' "$SCRIPT_NAME" "$*" >&2; }
trap 'log "failed at line $LINENO: $BASH_COMMAND"' ERR

# require_root WHY exits unless running as root.
require_root() {
	if [ "$(id -u)" -ne 0 ]; then
		log "must run as root ($1)"
		exit 1
	fi
}

# missing_packages PKG... prints the Debian packages that are not installed.
missing_packages() {
	local p
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || echo "$p"
	done
}
