#!/bin/bash
# kubelet-specific helpers: kubelet v1.34.4 (tests/setup/install-kubelet.sh)
# standalone (no API server, static pods) over the private CRI-O of
# crio.bash. The kubelet runs in its own mount and network namespace
# (unshare -mn): its API (10250) listens on that namespace's loopback, reached
# with nsenter --net; the host paths it insists on (/var/lib/kubelet/
# device-plugins, /var/log/containers, /sys/kernel/mm/hugepages) are private
# directories bind-mounted there, and the kernel sysctls it wants with
# protectKernelDefaults are files with the wanted values bind-mounted over
# /proc/sys/... in that namespace, so the host's values are never read as
# wrong nor changed. Pods use the host network (CRI-O's namespace), so the
# kubelet's namespace only holds its API.

KUBELET_VERSION=${KUBELET_VERSION:-1.34.4}
KUBELET_BIN=$ENGINES_PREFIX/kubelet-v$KUBELET_VERSION/kubelet
KL_DIR=$ENGINES_TMP/kl
KL_NODE=runcr-node

requires_kubelet() {
	[ -x "$KUBELET_BIN" ] || skip "needs $KUBELET_BIN (bash tests/setup/install-engines.sh)"
	requires_cmd buildah curl nsenter unshare
}

# The script run inside unshare -mn: private mounts, then exec the kubelet.
kubelet_ns_script() {
	cat <<EOF
set -e
mount --make-rprivate /
ip link set lo up
for s in vm/overcommit_memory:1 vm/panic_on_oom:0 kernel/panic:10 kernel/panic_on_oops:1 \\
	kernel/keys/root_maxkeys:1000000 kernel/keys/root_maxbytes:25000000; do
	f=$KL_DIR/sysctl/\${s%%:*}
	mkdir -p "\$(dirname "\$f")"
	echo "\${s#*:}" >"\$f"
	mount --bind "\$f" "/proc/sys/\${s%%:*}"
done
# tmpfs over /var/lib and /var/log in this namespace only, so the mount
# points are made there, not on the host.
mount -t tmpfs -o size=1m,mode=0755 none /var/lib
mount -t tmpfs -o size=1m,mode=0755 none /var/log
mkdir -p /var/lib/kubelet/device-plugins /var/log/containers
mount --bind $KL_DIR/device-plugins /var/lib/kubelet/device-plugins
mount --bind $KL_DIR/containers-logs /var/log/containers
mount -t tmpfs -o size=1m,mode=0755 none /sys/kernel/mm/hugepages
exec $KUBELET_BIN --config $KL_DIR/config.yaml --hostname-override $KL_NODE --node-ip 127.0.0.1 \\
	--root-dir $KL_DIR/root --cert-dir $KL_DIR/pki --v 2
EOF
}

kubelet_start() {
	mkdir -p "$KL_DIR"/{root,pods,manifests,device-plugins,containers-logs,sysctl}
	cat >"$KL_DIR/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: unix://$CRIO_SOCK
staticPodPath: $KL_DIR/manifests
fileCheckFrequency: 1s
syncFrequency: 2s
podLogsDir: $KL_DIR/pods
volumePluginDir: $KL_DIR/volume-plugins
cgroupDriver: cgroupfs
cgroupRoot: /runcr-test-kubelet
failCgroupV1: false
failSwapOn: false
oomScoreAdj: 0
protectKernelDefaults: true
makeIPTablesUtilChains: false
address: 127.0.0.1
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization: {mode: AlwaysAllow}
evictionHard: {}
mergeDefaultEvictionSettings: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
registerNode: false
resolvConf: ""
localStorageCapacityIsolation: false
featureGates:
  ContainerCheckpoint: true
EOF
	# The kubelet wants its cgroupRoot to exist in every hierarchy.
	local h
	for h in /sys/fs/cgroup/*/; do
		[ -L "${h%/}" ] || [ -e "${h}cgroup.procs" ] || continue
		mkdir -p "${h}runcr-test-kubelet"
		if [ -e "${h}cpuset.cpus" ]; then
			cat "${h}cpuset.cpus" >"${h}runcr-test-kubelet/cpuset.cpus"
			cat "${h}cpuset.mems" >"${h}runcr-test-kubelet/cpuset.mems"
		fi
	done
	kubelet_ns_script >"$KL_DIR/ns.sh"
	unshare -mn --propagation private bash "$KL_DIR/ns.sh" >"$KL_DIR/kubelet.log" 2>&1 &
	echo $! >"$KL_DIR/pid"
	local i
	for ((i = 0; i < 150; i++)); do
		kl_healthz && return 0
		sleep 0.2
	done
	tail -40 "$KL_DIR/kubelet.log" >&2
	return 1
}

kl_healthz() {
	[ "$(nsenter --net="/proc/$(cat "$KL_DIR/pid")/ns/net" curl -s http://127.0.0.1:10248/healthz 2>/dev/null)" = ok ]
}

# kl_api METHOD PATH: the kubelet API over HTTPS in its namespace; sets
# KL_BODY and KL_HTTP (the status code).
# shellcheck disable=SC2034 # both are used by the tests
kl_api() {
	local out
	out=$(nsenter --net="/proc/$(cat "$KL_DIR/pid")/ns/net" curl -sk -X "$1" -w '\n%{http_code}' "https://127.0.0.1:10250$2")
	KL_HTTP=${out##*$'\n'}
	KL_BODY=${out%$'\n'*}
}

kubelet_stop() {
	[ -f "$KL_DIR/pid" ] || return 0
	rm -f "$KL_DIR"/manifests/*
	sleep 3
	stop_by_pidfile "$KL_DIR/pid" 50
}

# kl_static_pod NAME IMAGE [COMMAND]: writes a static pod manifest.
kl_static_pod() {
	local name=$1 image=$2 cmd=${3:-}
	{
		cat <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: $name
  namespace: default
spec:
  hostNetwork: true
  terminationGracePeriodSeconds: 1
  containers:
  - name: wl
    image: $image
    imagePullPolicy: Never
EOF
		if [ -n "$cmd" ]; then
			printf '    command: ["sh", "-c", %s]\n' "$(jq -Rs . <<<"$cmd")"
		fi
	} >"$KL_DIR/manifests/$name.yaml"
}

# Reader: the state via crictl exec into the container of static pod $KL_POD.
kl_reader() {
	local c
	c=$("${CRICTL[@]}" ps -q --label "io.kubernetes.pod.name=$KL_POD-$KL_NODE" --state running 2>/dev/null | head -1)
	[ -n "$c" ] || return 1
	timeout 30 "${CRICTL[@]}" exec "$c" cat /tmp/state
}
