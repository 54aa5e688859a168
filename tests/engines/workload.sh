# shellcheck shell=sh
# The engine tests' workload (busybox sh). It keeps a 1 MiB random string
# (base64, ~1.4 MB) in shell memory, remembers its md5, and every half second
# bumps an in-memory counter, re-hashes the string and writes one line,
#   counter=N mem=OK|BAD md5=<md5 taken at start>
# to /tmp/state (atomically) and to stdout. After a restore the counter must
# go on from where it was and md5 must be the one from before the checkpoint:
# a restarted container would start at 1 with another random string.
exec 3>&- 4>&- 5>&- 2>/dev/null
s=$(head -c 1048576 /dev/urandom | base64 -w 0)
sum=$(printf %s "$s" | md5sum | cut -c1-32)
i=0
while :; do
	i=$((i + 1))
	cur=$(printf %s "$s" | md5sum | cut -c1-32)
	if [ "$cur" = "$sum" ]; then m=OK; else m=BAD; fi
	line="counter=$i mem=$m md5=$sum"
	echo "$line" >/tmp/state.new && mv /tmp/state.new /tmp/state
	echo "$line"
	sleep 0.5
done
