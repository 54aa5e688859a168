#!/bin/bash
# Logging wrapper the engine tests install as the engines' OCI runtime
# (helpers.bash copies it with @LOG@ and @RUNCR@ filled in). It appends the
# caller, the names of the environment variables it was given, and the argv,
# shell-quoted, to @LOG@; runs runcr with the same argv and environment; then
# logs the exit status. Not exec, so the status can be logged: engines only
# wait for the runtime to exit, and containers are reparented to the engine's
# subreaper (conmon, the shim) either way. Note: bash gives itself a default
# PATH when it has none but does not export it, so runcr sees the engine's
# environment unchanged.
caller=$(cat /proc/$PPID/comm 2>/dev/null)
envnames=$(tr '\0' '\n' </proc/$$/environ | cut -d= -f1 | sort)
nenv=$(printf '%s' "$envnames" | grep -c .)
if [ "$nenv" -le 10 ]; then
	envdesc="[$(printf '%s' "$envnames" | tr '\n' ',')]"
else
	envdesc="$nenv-vars"
fi
grep -qx PATH <<<"$envnames" || envdesc="$envdesc,NO-PATH"
verb=
for a in "$@"; do
	case $a in
	checkpoint | restore | create | start | run | exec | delete | kill | pause | resume | state | ps | update | events | features | list | spec)
		verb=$a
		break
		;;
	esac
done
{
	printf '%s caller=%s env=%s argv:' "$(date +%T.%N)" "$caller" "$envdesc"
	printf ' %q' "$@"
	echo
} >>"@LOG@"
# ENGINES_ENSURE_PATH (set when the tests run): exploration aid only, gives
# runcr a PATH when the engine passed none (Podman's kill/delete/stop do).
# shellcheck disable=SC2157 # a placeholder, replaced when installed
if [ -n "@ENSURE_PATH@" ] && ! printenv PATH >/dev/null; then
	export PATH="@ENSURE_PATH@"
fi
"@RUNCR@" "$@"
rc=$?
printf '%s caller=%s rc=%d (%s %s)\n' "$(date +%T.%N)" "$caller" "$rc" "${verb:-?}" "${*: -1}" >>"@LOG@"
exit $rc
