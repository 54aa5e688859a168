package manifest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// sampleDumpLog is a shortened CRIU 4.2.1 dump.log of a runc container
// dumped with --leave-running after runcr froze it.
const sampleDumpLog = `(00.000000) Parsing config file /run/runcr/criu-network-lock-nftables.conf
(00.000012) Version: 4.2.1 (gitid 0)
(00.000745) Dumping processes (pid: 12086 comm: memhog)
(00.000900) cg: Dumping cgroups for thread 25227
(00.001416) freezing cgroup /sys/fs/cgroup/freezer/dt-runcr: 100 x 100ms attempts, timeout: 10s
(00.001454) SEIZE 12086 (comm memhog): success
(00.002072) net: Lock network
(00.002073) Running network-lock scripts
(00.003617) RPC NOTIFY query-ext-files: no ` + "`opts`" + ` returned.
(00.003690) 	type tmpfs source tmpfs mnt_id 78 s_dev 0x31 / @ ./dev flags 0x1000002 options size=65536k,mode=755
(00.006713) Collecting mappings (pid: 12086)
pie: 1: Daemon waits for command
(00.008326) Dumping pages (type: 59 pid: 12086)
(00.022860) cg: Dumping cgroups for 12086
c 1:3 rwm
(00.039191) cg: adding cgroup /proc/self/fd/20/dt-runcr
(00.040632) cg: Dumping cgroups for thread 12094
(00.041521) Dumping mm (pid: 12086)
(00.041658) mnt: Dumping mountpoints
(00.065921) Dumping file-locks
(00.065928) Dumping pstree (pid: 12086)
(00.067949) Dump NET namespace info 10 via 12086
(00.078761) Namespaces dump complete
(00.079262) net: Unlock network
(00.091343) Unfreezing tasks into 1
(00.091402) Dumping finished successfully
`

func TestParseDumpPhases(t *testing.T) {
	phases, total, err := parseDumpPhases(strings.NewReader(sampleDumpLog))
	if err != nil {
		t.Fatal(err)
	}
	if total != 91.402 {
		t.Errorf("total %v ms, want 91.402", total)
	}
	want := []struct {
		name   string
		ms     float64
		frozen bool
	}{
		{PhaseStartup, 0.745, false},
		{PhasePrepare, 0.671, false},
		{PhaseFreezing, 0.656, false},
		{PhaseNetworkLock, 1.545, true},
		{PhaseMountScan, 3.096, true},
		{PhaseParasite, 1.613 + 0.137, true},
		{PhaseMemory, 14.534, true},
		{PhaseCgroups, 18.661 + 0.501, true},
		{PhaseMounts, 24.270, true},
		{PhaseNamespaces, 2.021, true},
		{PhaseNetNamespace, 10.812, true},
		{PhaseNetworkUnlock, 12.081, true},
		{PhaseUnfreeze, 0.059, false},
	}
	if len(phases) != len(want) {
		t.Fatalf("got %d phases %+v, want %d", len(phases), phases, len(want))
	}
	sum := 0.0
	for i, w := range want {
		p := phases[i]
		sum += p.Ms
		if p.Name != w.name || p.Frozen != w.frozen || round3(p.Ms) != round3(w.ms) {
			t.Errorf("phase %d = %+v, want %s %.3f ms frozen=%v", i, p, w.name, w.ms, w.frozen)
		}
	}
	if round3(sum) != total {
		t.Errorf("phases add up to %v ms, not the log's %v", sum, total)
	}
}

func TestParseDumpPhasesOddLogs(t *testing.T) {
	for name, log := range map[string]string{
		"empty":            "",
		"no timestamps":    "pie: 1: hello\nsomething\n",
		"bad timestamps":   "(abc) x\n(12) y\n()\n(",
		"no closing paren": "(00.000100 Dumping processes (pid: 1\n",
	} {
		phases, total, err := parseDumpPhases(strings.NewReader(log))
		if err != nil || phases != nil || total != 0 {
			t.Errorf("%s: got %v, %v, %v; want nothing", name, phases, total, err)
		}
	}
	// A clock that goes back (a garbled line) doesn't make a phase negative;
	// a marker seen twice starts its phase once.
	log := "(00.001000) Dumping processes (pid: 1\n(00.005000) net: Lock network\n(00.004000) junk\n" +
		"(00.006000) Dumping processes (pid: 1\n(00.010000) net: Unlock network\n(00.012000) end\n"
	phases, total, err := parseDumpPhases(strings.NewReader(log))
	if err != nil {
		t.Fatal(err)
	}
	if total != 12 {
		t.Errorf("total %v, want 12", total)
	}
	for _, p := range phases {
		if p.Ms < 0 {
			t.Errorf("negative phase %+v", p)
		}
	}
	if n := len(phases); n != 4 || phases[2].Name != PhaseNetworkLock || phases[2].Ms != 5 || phases[3].Ms != 2 {
		t.Errorf("phases %+v", phases)
	}
}

func TestBuildFrozenProfile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "dump.log")
	if err := os.WriteFile(path, []byte(sampleDumpLog), 0o600); err != nil {
		t.Fatal(err)
	}
	st := &DumpStats{FreezingTime: 600, FrozenTime: 89700}
	p := BuildFrozenProfile(path, st, 100*time.Millisecond)
	if p == nil {
		t.Fatal("no profile")
	}
	if p.StoppedMs != 100 || p.OutsideCriuMs != 9.7 || p.CriuLogMs != 91.402 {
		t.Errorf("profile %+v", p)
	}
	if p := BuildFrozenProfile(path, st, 0); p == nil || p.StoppedMs != 0 || p.OutsideCriuMs != 0 {
		t.Errorf("without runcr's stop: %+v", p)
	}
	if p := BuildFrozenProfile(filepath.Join(dir, "missing.log"), st, time.Second); p != nil {
		t.Errorf("profile of a missing log: %+v", p)
	}
}
