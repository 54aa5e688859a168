//go:build linux

package bench

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// These run without root or a runtime, so `make unit` covers the parts
// of the bench that decide what a result means.

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
	} {
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestQuantile(t *testing.T) {
	xs := []float64{4, 1, 3, 2, 5}
	for q, want := range map[float64]float64{0: 1, 0.25: 2, 0.5: 3, 0.75: 4, 1: 5} {
		if got := quantile(xs, q); got != want {
			t.Errorf("quantile(%v, %v) = %v, want %v", xs, q, got, want)
		}
	}
	if got := quantile([]float64{1, 2}, 0.25); got != 1.25 {
		t.Errorf("quantile([1 2], 0.25) = %v, want 1.25", got)
	}
}

func TestParseState(t *testing.T) {
	st := parseState("token=ab12 seed=7 mib=16 check=3 result=OK bad=0 ms=12\n")
	if st["token"] != "ab12" || st["check"] != "3" || st["result"] != "OK" || st["ms"] != "12" {
		t.Errorf("parseState: %v", st)
	}
}

func TestReportTargets(t *testing.T) {
	s := samples{
		CheckpointMs: []float64{80}, RestoreMs: []float64{100}, ImageMiB: []float64{16}, FrozenMs: []float64{10},
		CkptRSSMiB: []float64{20}, RestRSSMiB: []float64{20},
	}
	n := samples{
		CheckpointMs: []float64{100}, RestoreMs: []float64{100}, ImageMiB: []float64{16}, FrozenMs: []float64{10},
		CkptRSSMiB: []float64{20}, RestRSSMiB: []float64{19},
	}
	r := buildReport(machine{}, []sizeResult{{MiB: 16, Runs: 1, Lanes: map[string]samples{"runcr": s, "runc": n}}})
	want := map[string]bool{
		"checkpoint wall time":         true,  // 0.80 <= 0.85
		"restore wall time":            false, // 1.00 > 0.85
		"runtime peak RSS, checkpoint": true,
		"runtime peak RSS, restore":    false,
	}
	for _, rw := range r.Rows {
		w, ok := want[rw.Metric]
		if !ok {
			if rw.Met != nil {
				t.Errorf("%s has a target", rw.Metric)
			}
			continue
		}
		if rw.Met == nil || *rw.Met != w {
			t.Errorf("%s: ratio %.2f target %.2f met=%v, want %v", rw.Metric, rw.Ratio, rw.Target, rw.Met, w)
		}
	}
	md := r.markdown()
	if !strings.Contains(md, "MISSED: runcr needs 15.0% less") || !strings.Contains(md, "| 16 MiB | checkpoint wall time | 80.0 ms | 100.0 ms | 0.800 | 0.80 [0.80, 0.80] | ≤ 0.85: met |") {
		t.Errorf("markdown:\n%s", md)
	}
}

func TestImageSizeSkipsLogs(t *testing.T) {
	dir := t.TempDir()
	for name, n := range map[string]int{"pages-1.img": 4096, "dump.log": 999, "inventory.img": 10} {
		if err := os.WriteFile(filepath.Join(dir, name), make([]byte, n), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := imageSize(dir); err != nil || got != 4106 {
		t.Errorf("imageSize = %d, %v; want 4106", got, err)
	}
}

func TestCriuLogTimes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dump.log")
	log := "(00.000000) CRIU run id = x\n(00.150500) Dumping processes (pid: 1 comm: x)\npie: no timestamp\n(00.432100) Dumping finished successfully\n"
	if err := os.WriteFile(path, []byte(log), 0o600); err != nil {
		t.Fatal(err)
	}
	at, end := criuLogTimes(path, "Dumping processes (pid")
	if math.Abs(at-150.5) > 1e-9 || math.Abs(end-432.1) > 1e-9 {
		t.Errorf("criuLogTimes = %v, %v; want 150.5, 432.1", at, end)
	}
}
