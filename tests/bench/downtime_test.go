//go:build linux

package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// Downtime (issue 14): before each measured checkpoint, every lane also
// checkpoints its container with --leave-running into a scratch directory
// and records how long the container was stopped. For runcr that is its
// own measurement, from its freeze to its thaw (the manifest's
// dump_stats.frozen_profile.stopped_ms), which covers more than CRIU's
// frozen_time: runcr freezes the container before CRIU starts and thaws
// it after CRIU exits. For runc, whose CRIU freezes and thaws, it is CRIU's
// freezing plus frozen time. CRIU's phases, from each dump.log, come from
// `runcr inspect --format json` (runc's images too). BENCH_DOWNTIME=0
// skips it.

type downtime struct {
	StoppedMs []float64 `json:"leave_running_stopped_ms"`
	FrozenMs  []float64 `json:"leave_running_criu_frozen_ms"`
	// MemwriteMs is CRIU's memwrite_time: writing the pages into the
	// image on the bench's tmpfs. It is where the rare slow dumps at
	// 256 MiB spend their extra time (BENCHMARKS.md, issue 14).
	MemwriteMs []float64            `json:"leave_running_criu_memwrite_ms"`
	PhasesMs   map[string][]float64 `json:"leave_running_phases_ms"`
	order      []string
}

func downtimeEnabled() bool { return os.Getenv("BENCH_DOWNTIME") != "0" }

// leaveRunning checkpoints the running container with --leave-running and
// records the stop when measure.
func (l *lane) leaveRunning(b *testing.B, measure bool) {
	dir := l.images + "-lr"
	_ = os.RemoveAll(dir)
	defer os.RemoveAll(dir)
	errLog := filepath.Join(filepath.Dir(l.images), "leave-running.stderr")
	errf, err := os.Create(errLog)
	if err != nil {
		b.Fatal(err)
	}
	_, err = run(l.rt("checkpoint", "--leave-running", "--image-path", dir, l.id), l.env,
		[3]*os.File{l.devnul, errf, errf}, l.cfg.timeout, false)
	errf.Close()
	if err != nil {
		out, _ := os.ReadFile(errLog)
		b.Fatalf("%s checkpoint --leave-running (%d MiB): %v\n%s\n%s", l.name, l.mib, err, out, tail(filepath.Join(dir, "dump.log"), 15))
	}
	if !measure {
		return
	}
	ds, err := dumpStats(dir)
	if err != nil {
		b.Fatalf("%s: --leave-running stats-dump: %v", l.name, err)
	}
	frozen := float64(ds.GetFrozenTime()) / 1000
	stopped := frozen + float64(ds.GetFreezingTime())/1000
	var ins struct {
		Dump struct {
			Profile struct {
				StoppedMs float64 `json:"stopped_ms"`
				Phases    []struct {
					Name string  `json:"name"`
					Ms   float64 `json:"ms"`
				} `json:"phases"`
			} `json:"frozen_profile"`
		} `json:"dump_stats"`
	}
	out, err := exec.Command(l.cfg.runcr, "inspect", "--format", "json", dir).Output()
	if err != nil {
		b.Fatalf("runcr inspect %s: %v", dir, err)
	}
	if err := json.Unmarshal(out, &ins); err != nil {
		b.Fatalf("runcr inspect %s: %v", dir, err)
	}
	p := ins.Dump.Profile
	if l.name == "runcr" && p.StoppedMs > 0 {
		stopped = p.StoppedMs
	}
	d := &l.samples.Downtime
	d.StoppedMs = append(d.StoppedMs, stopped)
	d.FrozenMs = append(d.FrozenMs, frozen)
	d.MemwriteMs = append(d.MemwriteMs, float64(ds.GetMemwriteTime())/1000)
	if d.PhasesMs == nil {
		d.PhasesMs = map[string][]float64{}
	}
	for _, ph := range p.Phases {
		if _, ok := d.PhasesMs[ph.Name]; !ok {
			d.order = append(d.order, ph.Name)
		}
		d.PhasesMs[ph.Name] = append(d.PhasesMs[ph.Name], ph.Ms)
	}
}

// phaseTable gives the medians of CRIU's phases with --leave-running,
// runcr against runc, per size.
func phaseTable(sizes []sizeResult) string {
	var sb strings.Builder
	for _, s := range sizes {
		a, c := s.Lanes["runcr"].Downtime, s.Lanes["runc"].Downtime
		if len(a.PhasesMs) == 0 && len(c.PhasesMs) == 0 {
			continue
		}
		names := append([]string(nil), a.order...)
		for _, n := range c.order {
			if _, ok := a.PhasesMs[n]; !ok {
				names = append(names, n)
			}
		}
		if len(names) == 0 { // order is not kept in JSON: sort
			for n := range a.PhasesMs {
				names = append(names, n)
			}
			sort.Strings(names)
		}
		fmt.Fprintf(&sb, "\nCRIU's phases with --leave-running at %s (dump.log, medians, ms):\n\n", sizeName(s.MiB))
		sb.WriteString("| phase | runcr | runc |\n| --- | ---: | ---: |\n")
		for _, n := range names {
			fmt.Fprintf(&sb, "| %s | %.1f | %.1f |\n", n, median(a.PhasesMs[n]), median(c.PhasesMs[n]))
		}
	}
	return sb.String()
}
