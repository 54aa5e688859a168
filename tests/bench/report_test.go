//go:build linux

package bench

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// machine describes where a run happened.
type machine struct {
	Date            string  `json:"date"`
	Kernel          string  `json:"kernel"`
	CPU             string  `json:"cpu"`
	CPUs            int     `json:"cpus"`
	MemTotalGiB     float64 `json:"mem_total_gib"`
	CgroupFS        string  `json:"cgroup_fs"`
	RunFS           string  `json:"run_fs"`
	CriuKdatCached  bool    `json:"criu_kdat_cache_present"`
	CriuKdatOwner   string  `json:"criu_kdat_cache_kept_by"`
	Runc            string  `json:"runc"`
	Runcr           string  `json:"runcr"`
	Source          string  `json:"runcr_source_tree,omitempty"`
	Criu            string  `json:"criu"`
	CriuVersion     string  `json:"criu_version"`
	RuncEnv         string  `json:"runc_extra_env"`
	RuncrEnv        string  `json:"runcr_extra_env,omitempty"`
	RuncrCriuConfig string  `json:"runcr_criu_config,omitempty"`
	RuncrWrap       string  `json:"runcr_wrapper,omitempty"`
	Go              string  `json:"go"`
	TmpfsWriteGBps  float64 `json:"tmpfs_single_stream_write_gb_per_s"`
	AnonFaultUs     float64 `json:"anon_page_first_touch_us"`
	PeakRSSMethod   string  `json:"peak_rss_method"`
	LoadBefore      string  `json:"loadavg_before"`
	LoadAfter       string  `json:"loadavg_after"`
	DurationS       float64 `json:"duration_s"`
	WarmupCycles    int     `json:"warmup_cycles_per_runtime_and_size"`
	AlternatedOrder string  `json:"order"`
}

func describeMachine(cfg *config) machine {
	m := machine{
		Date:            time.Now().UTC().Format(time.RFC3339),
		Kernel:          unameRelease(),
		CPU:             cpuModel(),
		CPUs:            runtime.NumCPU(),
		MemTotalGiB:     memTotalGiB(),
		CgroupFS:        fsType("/sys/fs/cgroup"),
		RunFS:           fsType("/run"),
		Runc:            firstLine(cfg.runc, "--version"),
		Runcr:           firstLine(cfg.runcr, "--version"),
		Source:          os.Getenv("BENCH_SOURCE"),
		Criu:            cfg.criu,
		CriuVersion:     firstLine(cfg.criu, "--version"),
		RuncEnv:         strings.Join(cfg.runcEnv, " "),
		RuncrEnv:        strings.Join(cfg.runcrEnv, " "),
		RuncrCriuConfig: cfg.runcrCriuConfig,
		RuncrWrap:       cfg.runcrWrap,
		Go:              runtime.Version(),
		LoadBefore:      loadavg(),
		WarmupCycles:    cfg.warmup,
		AlternatedOrder: "each iteration checkpoints+restores+checks both runtimes; odd iterations start with runcr, even ones with runc",
		PeakRSSMethod:   "VmHWM of the runtime process itself, read at its PTRACE_EVENT_EXIT stop (children such as CRIU not included)",
	}
	if !cfg.trace {
		m.PeakRSSMethod = "not measured (BENCH_TRACE=0)"
	}
	if real, err := filepath.EvalSymlinks(cfg.criu); err == nil {
		m.Criu = real
	}
	// Where /run is a tmpfs CRIU keeps /run/criu.kdat itself, for both
	// runtimes. Elsewhere runcr shows its own cache (see
	// libcheckpoint/kdat.go) only to the CRIU it starts; runc's CRIU probes
	// the kernel at every start, as on a host without runcr.
	var st unix.Statfs_t
	runTmpfs := unix.Statfs("/run", &st) == nil && st.Type == unix.TMPFS_MAGIC
	cache, err := os.Stat("/run/runcr/kdat/criu.kdat")
	m.CriuKdatCached = runTmpfs || (err == nil && cache.Size() > 0)
	switch {
	case runTmpfs:
		m.CriuKdatOwner = "criu (/run is a tmpfs; both runtimes' CRIU load it)"
	case m.CriuKdatCached:
		m.CriuKdatOwner = "runcr (for the CRIU runcr starts only; runc's CRIU probes the kernel each time)"
	default:
		m.CriuKdatOwner = "none"
	}
	m.TmpfsWriteGBps = tmpfsWrite(cfg.workdir)
	m.AnonFaultUs = anonFault()
	return m
}

// anonFault is the cost of the first touch of a page of fresh anonymous
// memory, in microseconds: what a restore pays per page it fills.
func anonFault() float64 {
	const size = 64 << 20
	mem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return 0
	}
	defer func() { _ = unix.Munmap(mem) }()
	start := time.Now()
	for i := 0; i < size; i += os.Getpagesize() {
		mem[i] = 1
	}
	return math.Round(float64(time.Since(start).Microseconds())/float64(size/os.Getpagesize())*100) / 100
}

func unameRelease() string {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

func cpuModel() string {
	data, _ := os.ReadFile("/proc/cpuinfo")
	for line := range strings.Lines(string(data)) {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func memTotalGiB() float64 {
	var si unix.Sysinfo_t
	if unix.Sysinfo(&si) != nil {
		return 0
	}
	return math.Round(float64(si.Totalram)*float64(si.Unit)/(1<<30)*10) / 10
}

func fsType(path string) string {
	var st unix.Statfs_t
	if unix.Statfs(path, &st) != nil {
		return "?"
	}
	switch st.Type {
	case unix.TMPFS_MAGIC:
		return "tmpfs"
	case unix.CGROUP2_SUPER_MAGIC:
		return "cgroup2"
	case unix.EXT4_SUPER_MAGIC:
		return "ext4"
	}
	return fmt.Sprintf("0x%x", st.Type)
}

func firstLine(bin string, args ...string) string {
	out, err := exec.Command(bin, args...).Output()
	if err != nil {
		return "?"
	}
	line, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(line)
}

func loadavg() string {
	data, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// tmpfsWrite is one stream writing 1 GiB to a file on the bench's tmpfs,
// in 1 MiB writes of non-zero data, in GB/s: the ceiling for writing images.
func tmpfsWrite(dir string) float64 {
	path := filepath.Join(dir, "write-test")
	defer os.Remove(path)
	f, err := os.Create(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	buf := bytes.Repeat([]byte("runcr-bench-0123"), 1<<16) // 1 MiB
	start := time.Now()
	for range 1024 {
		if _, err := f.Write(buf); err != nil {
			return 0
		}
	}
	return math.Round(float64(1<<30)/time.Since(start).Seconds()/1e9*100) / 100
}

// row is one line of the table: a metric's medians and their ratio.
type row struct {
	MiB    int     `json:"mib"`
	Metric string  `json:"metric"`
	Unit   string  `json:"unit"`
	Runcr  float64 `json:"runcr"`
	Runc   float64 `json:"runc"`
	Ratio  float64 `json:"ratio"`
	// Target is the highest runcr/runc ratio accepted (0: none).
	Target float64 `json:"target,omitempty"`
	Met    *bool   `json:"met,omitempty"`
	// Paired: runcr's and runc's runs alternate, so run i of each saw
	// much the same load; these are the quartiles of the per-pair ratios,
	// a measure of how far the ratio can be trusted.
	PairedP25    float64 `json:"paired_ratio_p25"`
	PairedMedian float64 `json:"paired_ratio_median"`
	PairedP75    float64 `json:"paired_ratio_p75"`
	// Quartiles of each runtime's samples.
	RuncrP25 float64 `json:"runcr_p25"`
	RuncrP75 float64 `json:"runcr_p75"`
	RuncP25  float64 `json:"runc_p25"`
	RuncP75  float64 `json:"runc_p75"`
}

type report struct {
	Machine machine      `json:"machine"`
	Rows    []row        `json:"medians"`
	Sizes   []sizeResult `json:"sizes"`
}

func buildReport(m machine, sizes []sizeResult) report {
	r := report{Machine: m, Sizes: sizes}
	for _, s := range sizes {
		a, b := s.Lanes["runcr"], s.Lanes["runc"]
		timeTarget := 1.0
		if s.MiB <= 16 {
			timeTarget = 0.85
		}
		add := func(metric, unit string, x, y []float64, target float64) {
			rw := row{
				MiB: s.MiB, Metric: metric, Unit: unit, Runcr: median(x), Runc: median(y), Target: target,
				RuncrP25: quantile(x, 0.25), RuncrP75: quantile(x, 0.75), RuncP25: quantile(y, 0.25), RuncP75: quantile(y, 0.75),
			}
			var pairs []float64
			for i := range min(len(x), len(y)) {
				if y[i] > 0 {
					pairs = append(pairs, x[i]/y[i])
				}
			}
			rw.PairedP25, rw.PairedMedian, rw.PairedP75 = quantile(pairs, 0.25), median(pairs), quantile(pairs, 0.75)
			if rw.Runc > 0 {
				rw.Ratio = rw.Runcr / rw.Runc
			}
			if target > 0 {
				met := rw.Ratio <= target
				rw.Met = &met
			}
			r.Rows = append(r.Rows, rw)
		}
		add("checkpoint wall time", "ms", a.CheckpointMs, b.CheckpointMs, timeTarget)
		add("restore wall time", "ms", a.RestoreMs, b.RestoreMs, timeTarget)
		add("CRIU frozen time (stats-dump)", "ms", a.FrozenMs, b.FrozenMs, 0)
		if len(a.Downtime.StoppedMs) > 0 {
			stopTarget := 0.6
			if s.MiB <= 16 {
				stopTarget = 0.5
			}
			add("stopped, --leave-running (runcr: freeze to thaw; runc: CRIU freezing+frozen)", "ms", a.Downtime.StoppedMs, b.Downtime.StoppedMs, stopTarget)
			add("CRIU frozen time, --leave-running", "ms", a.Downtime.FrozenMs, b.Downtime.FrozenMs, 0)
			if len(a.Downtime.MemwriteMs) > 0 {
				add("CRIU memwrite (pages to the image), --leave-running", "ms", a.Downtime.MemwriteMs, b.Downtime.MemwriteMs, 0)
			}
		}
		add("image size", "MiB", a.ImageMiB, b.ImageMiB, 0)
		if m.PeakRSSMethod != "not measured (BENCH_TRACE=0)" {
			add("runtime peak RSS, checkpoint", "MiB", a.CkptRSSMiB, b.CkptRSSMiB, 1.0)
			add("runtime peak RSS, restore", "MiB", a.RestRSSMiB, b.RestRSSMiB, 1.0)
		}
	}
	return r
}

func (r report) markdown() string {
	var sb strings.Builder
	runs := 0
	if len(r.Sizes) > 0 {
		runs = r.Sizes[0].Runs
	}
	m := r.Machine
	fmt.Fprintf(&sb, "Medians of %d runs each (runcr and runc alternating), images on tmpfs; the target verdict is on the ratio of the medians.\n", runs)
	if m.Date != "" {
		fmt.Fprintf(&sb, "%s; %s, %d CPUs, %.1f GiB, kernel %s, cgroup fs %s, /run on %s (CRIU kdat cache kept by %s);\n",
			m.Date, m.CPU, m.CPUs, m.MemTotalGiB, m.Kernel, m.CgroupFS, m.RunFS, m.CriuKdatOwner)
		fmt.Fprintf(&sb, "%s (tree %s); %s; criu %s (%s); runc extra env: %q; tmpfs write %.2f GB/s; fresh anon page %.1f µs; load %s -> %s.\n",
			m.Runcr, m.Source, m.Runc, m.CriuVersion, m.Criu, m.RuncEnv, m.TmpfsWriteGBps, m.AnonFaultUs, m.LoadBefore, m.LoadAfter)
	}
	sb.WriteString("\n")
	sb.WriteString("| size | metric | runcr | runc | runcr/runc | paired ratios: median [p25, p75] | target |\n")
	sb.WriteString("| ---: | --- | ---: | ---: | ---: | :---: | --- |\n")
	for _, rw := range r.Rows {
		target := ""
		if rw.Met != nil {
			verdict := "met"
			if !*rw.Met {
				verdict = fmt.Sprintf("MISSED: runcr needs %.1f%% less", (1-rw.Target/rw.Ratio)*100)
			}
			target = fmt.Sprintf("≤ %.2f: %s", rw.Target, verdict)
		}
		fmt.Fprintf(&sb, "| %s | %s | %s | %s | %.3f | %.2f [%.2f, %.2f] | %s |\n",
			sizeName(rw.MiB), rw.Metric, num(rw.Runcr, rw.Unit), num(rw.Runc, rw.Unit), rw.Ratio,
			rw.PairedMedian, rw.PairedP25, rw.PairedP75, target)
	}
	return sb.String()
}

func sizeName(mib int) string {
	if mib >= 1024 && mib%1024 == 0 {
		return fmt.Sprintf("%d GiB", mib/1024)
	}
	return fmt.Sprintf("%d MiB", mib)
}

func num(v float64, unit string) string {
	switch unit {
	case "ms":
		return fmt.Sprintf("%.1f ms", v)
	default:
		return fmt.Sprintf("%.1f %s", v, unit)
	}
}

// quantile of the samples, interpolated between closest ranks; 0 when
// there are none.
func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	pos := q * float64(len(s)-1)
	lo := int(math.Floor(pos))
	hi := int(math.Ceil(pos))
	return s[lo] + (s[hi]-s[lo])*(pos-float64(lo))
}

// median of the samples; 0 when there are none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
