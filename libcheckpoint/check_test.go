package libcheckpoint

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"testing"

	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/configs"
)

// The JSON of `runcr check --format json` is an interface: scripts (and
// make bench) read these keys.
func TestHostReportJSONShape(t *testing.T) {
	r := HostReport{
		Features:    map[string]bool{"seccomp_filters": true},
		Cgroup:      cgroupReport(),
		NetworkLock: NetworkLockReport{Backend: "nftables", Iptables: true, Nftables: true, Meaning: "m"},
		Seccomp:     seccompReport(map[string]bool{"seccomp_filters": true, "seccomp_suspend": true}),
		Options:     map[string]OptionSupport{},
	}
	data, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"cgroup":       {"meaning", "mode"},
		"network_lock": {"backend", "iptables", "meaning", "nftables"},
		"seccomp":      {"criu_dumps_filters", "criu_suspends", "kernel", "meaning"},
	}
	for key, fields := range want {
		obj, ok := m[key].(map[string]any)
		if !ok {
			t.Fatalf("%s is %T, want an object: %s", key, m[key], data)
		}
		var got []string
		for k := range obj {
			got = append(got, k)
		}
		sort.Strings(got)
		if !reflect.DeepEqual(got, fields) {
			t.Errorf("%s has keys %v, want %v", key, got, fields)
		}
		if s, _ := obj["meaning"].(string); s == "" {
			t.Errorf("%s.meaning is empty", key)
		}
	}
	for _, key := range []string{"criu_path", "criu_version", "features", "hardware_breakpoints", "kernel_feature_cache", "options"} {
		if _, ok := m[key]; !ok {
			t.Errorf("no %q in %s", key, data)
		}
	}
	switch mode := m["cgroup"].(map[string]any)["mode"]; mode {
	case "v1", "hybrid", "unified":
	default:
		t.Errorf("cgroup.mode %q is not v1, hybrid or unified", mode)
	}
	// Errors appear only when there is one.
	if _, ok := m["network_lock"].(map[string]any)["iptables_error"]; ok {
		t.Errorf("iptables_error present without an error: %s", data)
	}
}

func TestSeccompMeaning(t *testing.T) {
	if !isFile("/proc/sys/kernel/seccomp/actions_avail") {
		t.Skip("this kernel has no seccomp filters")
	}
	ok := seccompReport(map[string]bool{"seccomp_filters": true, "seccomp_suspend": true})
	bad := seccompReport(map[string]bool{"seccomp_suspend": true})
	if !ok.Kernel || !ok.CriuDumpsFilters || bad.CriuDumpsFilters || ok.Meaning == bad.Meaning {
		t.Errorf("with and without CRIU's seccomp_filters: %+v / %+v", ok, bad)
	}
}

func TestNeedsNetworkLock(t *testing.T) {
	for _, tc := range []struct {
		ns   configs.Namespaces
		want bool
	}{
		{nil, false}, // the host's network
		{configs.Namespaces{{Type: configs.NEWPID}}, false},
		{configs.Namespaces{{Type: configs.NEWNET}}, true},
		{configs.Namespaces{{Type: configs.NEWNET, Path: "/var/run/netns/x"}}, false}, // external
	} {
		if got := needsNetworkLock(&configs.Config{Namespaces: tc.ns}); got != tc.want {
			t.Errorf("namespaces %+v: got %v, want %v", tc.ns, got, tc.want)
		}
	}
}

func TestNetworkLockConfigured(t *testing.T) {
	if _, err := os.Stat("/etc/criu/default.conf"); err == nil {
		t.Skip("/etc/criu/default.conf exists on this host")
	}
	home := t.TempDir()
	t.Setenv("HOME", home)
	os.Unsetenv("CRIU_CONFIG_FILE")
	if networkLockConfigured() {
		t.Fatal("configured without any configuration")
	}
	t.Setenv("CRIU_CONFIG_FILE", "/nonexistent")
	if !networkLockConfigured() {
		t.Error("CRIU_CONFIG_FILE set by the user is not respected")
	}
	os.Unsetenv("CRIU_CONFIG_FILE")
	if err := os.MkdirAll(filepath.Join(home, ".criu"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, ".criu", "default.conf"), []byte("tcp-close\n  --network-lock skip\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if !networkLockConfigured() {
		t.Error("network-lock in ~/.criu/default.conf is not respected")
	}
}

// setCriuVersion reaches into libcontainer; if a libcontainer upgrade
// renames the field, this fails (and runcr falls back to letting
// libcontainer ask CRIU).
func TestSetCriuVersion(t *testing.T) {
	c := &libcontainer.Container{}
	if !setCriuVersion(c, 40201) {
		t.Fatal("libcontainer.Container has no int field criuVersion any more")
	}
	if got := reflect.ValueOf(c).Elem().FieldByName("criuVersion").Int(); got != 40201 {
		t.Errorf("criuVersion = %d, want 40201", got)
	}
}
