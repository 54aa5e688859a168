package manifest

import (
	"bufio"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// The downtime of a checkpoint that keeps the container running
// (--leave-running, --pre-dump) is the time its processes cannot run. CRIU
// reports part of it as frozen_time in stats-dump; when runcr froze the
// container first (freeze.go), CRIU found it frozen and its frozen_time
// leaves out what happened before CRIU seized the tasks (libcontainer
// starting CRIU, CRIU's start-up) and after CRIU let go of them (CRIU's exit,
// runcr's thaw). So runcr measures the whole stop itself, from its freeze to
// its thaw, and splits CRIU's share into phases by the timestamps of
// CRIU's dump.log.

// FrozenProfile says where the time a checkpoint kept the container
// stopped went.
type FrozenProfile struct {
	// StoppedMs is how long the container could not run, as runcr measured
	// it: from the start of its freeze to the end of its thaw. Zero when
	// runcr did not freeze the container (CRIU did, or the container was
	// paused, or CRIU ended it): then CRIU's freezing and frozen times are
	// the figure.
	StoppedMs float64 `json:"stopped_ms,omitempty"`
	// OutsideCriuMs is the part of StoppedMs outside CRIU's freezing and
	// frozen time: starting CRIU and its start-up, its exit, and runcr's
	// and libcontainer's work until the thaw.
	OutsideCriuMs float64 `json:"outside_criu_ms,omitempty"`
	// CriuLogMs is CRIU's whole run as timed by its dump.log.
	CriuLogMs float64 `json:"criu_log_ms"`
	// Phases are CRIU's phases in the order they ran, from dump.log.
	Phases []ProfilePhase `json:"phases"`
}

// ProfilePhase is one phase of CRIU's dump.
type ProfilePhase struct {
	Name string  `json:"name"`
	Ms   float64 `json:"ms"`
	// Frozen is true for the phases that run while the tasks are frozen.
	Frozen bool `json:"frozen"`
}

// Phase names. Each starts at the first log line holding one of its
// markers (dumpPhaseMarkers) and lasts until the next phase starts; a name
// that comes back adds up.
const (
	PhaseStartup       = "criu start-up"
	PhasePrepare       = "preparation"
	PhaseFreezing      = "freezing"
	PhaseNetworkLock   = "network lock"
	PhaseMountScan     = "mount and namespace scan"
	PhaseParasite      = "parasite and task state"
	PhaseMemory        = "memory dump (memdump + memwrite)"
	PhaseCgroups       = "cgroups"
	PhaseMounts        = "mounts (tmpfs contents)"
	PhaseNamespaces    = "namespaces"
	PhaseNetNamespace  = "network namespace"
	PhaseNetworkUnlock = "network unlock"
	PhaseUnfreeze      = "unfreeze and exit"
)

// dumpPhaseMarkers are the texts CRIU 4.x logs (cr-dump.c, net.c,
// mount.c, cgroup.c) where each phase starts. Only the first occurrence of
// a marker counts, and one with an "after" phase only while that phase runs
// (CRIU logs its own cgroups early on, as "Dumping cgroups for thread").
var dumpPhaseMarkers = []struct{ marker, phase, after string }{
	{"Dumping processes (pid:", PhasePrepare, ""},
	{"freezing cgroup", PhaseFreezing, ""},
	{"SEIZE ", PhaseFreezing, ""},
	{"net: Lock network", PhaseNetworkLock, ""},
	{"query-ext-files", PhaseMountScan, ""},
	{" mnt_id ", PhaseMountScan, ""},
	{"Collecting mappings (pid:", PhaseParasite, ""},
	{"Dumping pages (type:", PhaseMemory, ""},
	{"cg: Dumping cgroups for", PhaseCgroups, PhaseMemory},
	{"Dumping mm (pid:", PhaseParasite, ""},
	{"mnt: Dumping mountpoints", PhaseMounts, ""},
	{"Dumping pstree (pid:", PhaseNamespaces, ""},
	{"Dump NET namespace info", PhaseNetNamespace, ""},
	{"Namespaces dump complete", PhaseCgroups, ""},
	{"net: Unlock network", PhaseNetworkUnlock, ""},
	{"Unfreezing tasks", PhaseUnfreeze, ""},
}

// criuLogTime is the timestamp of a CRIU log line, "(00.012345) ...",
// in seconds since CRIU started.
func criuLogTime(line string) (float64, bool) {
	if !strings.HasPrefix(line, "(") {
		return 0, false
	}
	end := strings.IndexByte(line, ')')
	if end < 2 || end > 24 {
		return 0, false
	}
	// CRIU prints "(%02u.%06u)": seconds, a dot, microseconds.
	secs, us, ok := strings.Cut(line[1:end], ".")
	if !ok || secs == "" || len(us) != 6 || strings.Trim(secs+us, "0123456789") != "" {
		return 0, false
	}
	v, err := strconv.ParseFloat(line[1:end], 64)
	return v, err == nil
}

// parseDumpPhases reads a CRIU dump.log and returns its phases and CRIU's
// whole run in ms. Lines without a timestamp (the parasite's, continued
// lines) are skipped; a log without timestamps gives no phases.
func parseDumpPhases(r io.Reader) ([]ProfilePhase, float64, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	var phases []ProfilePhase
	index := map[string]int{}
	add := func(name string, ms float64) {
		i, ok := index[name]
		if !ok {
			i = len(phases)
			index[name] = i
			phases = append(phases, ProfilePhase{Name: name, Frozen: frozenPhase(name)})
		}
		phases[i].Ms += ms
	}
	seen := make([]bool, len(dumpPhaseMarkers))
	cur, since, now, stamped := PhaseStartup, 0.0, 0.0, false
	for sc.Scan() {
		line := sc.Text()
		t, ok := criuLogTime(line)
		if !ok {
			continue
		}
		stamped = true
		now = max(now, t*1000) // a clock going back is a garbled line
		next := ""
		for i, m := range dumpPhaseMarkers {
			if !seen[i] && (m.after == "" || m.after == cur) && strings.Contains(line, m.marker) {
				seen[i] = true
				if next == "" && m.phase != cur {
					next = m.phase
				}
			}
		}
		if next != "" {
			add(cur, now-since)
			cur, since = next, now
		}
	}
	if err := sc.Err(); err != nil {
		return nil, 0, err
	}
	if !stamped {
		return nil, 0, nil
	}
	add(cur, now-since) // the last phase lasts to the last line
	return phases, now, nil
}

// frozenPhase says whether a phase runs with the tasks frozen.
func frozenPhase(name string) bool {
	switch name {
	case PhaseStartup, PhasePrepare, PhaseFreezing, PhaseUnfreeze:
		return false
	}
	return true
}

// BuildFrozenProfile profiles a dump from its log and statistics, and
// the stop runcr measured (zero if runcr did not freeze and thaw).
func BuildFrozenProfile(logPath string, st *DumpStats, stopped time.Duration) *FrozenProfile {
	f, err := os.Open(logPath)
	if err != nil {
		return nil
	}
	defer f.Close()
	phases, total, err := parseDumpPhases(f)
	if err != nil || len(phases) == 0 {
		return nil
	}
	p := &FrozenProfile{CriuLogMs: round3(total), Phases: phases}
	for i := range p.Phases {
		p.Phases[i].Ms = round3(p.Phases[i].Ms)
	}
	if stopped > 0 {
		p.StoppedMs = round3(float64(stopped.Microseconds()) / 1000)
		if st != nil {
			p.OutsideCriuMs = round3(max(p.StoppedMs-usToMs(st.FreezingTime)-usToMs(st.FrozenTime), 0))
		}
	}
	return p
}

func round3(v float64) float64 {
	return float64(int64(v*1000+0.5)) / 1000
}

// DumpLogProfile profiles the CRIU dump whose log is logPath, of any
// runtime (runc's too), from the log alone: CRIU's phases, without the
// stop runcr measures.
func DumpLogProfile(logPath string) *FrozenProfile {
	return BuildFrozenProfile(logPath, nil, 0)
}
