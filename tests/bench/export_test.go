//go:build linux

package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkExport measures what `runcr checkpoint --export` costs over a
// plain checkpoint (issue 6: at most 1.5x at 1 GiB). One runcr container
// is checkpointed and restored over and over, alternating a plain cycle
// (checkpoint --image-path, restore --image-path) with an export cycle
// (checkpoint --export, restore --import), and which comes first; every
// restore is checked as in BenchmarkCheckpointRestore. The images, the
// archive and $TMPDIR (where --export puts its temporary images) are on
// the bench's tmpfs. Besides loadConfig's environment:
//
//	BENCH_EXPORT_MIB       workload size (default 1024)
//	BENCH_EXPORT_COMPRESS  --compress (default zstd)
func BenchmarkExport(b *testing.B) {
	cfg := loadConfig(b)
	mib := 1024
	if v := os.Getenv("BENCH_EXPORT_MIB"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			b.Fatalf("BENCH_EXPORT_MIB: %q", v)
		}
		mib = n
	}
	compress := os.Getenv("BENCH_EXPORT_COMPRESS")
	if compress == "" {
		compress = "zstd"
	}
	machine := describeMachine(cfg)
	started := time.Now()

	l := newLane(b, cfg, "runcr", cfg.runcrCopy, mib)
	defer l.teardown()
	tmp := filepath.Join(filepath.Dir(l.images), "tmp")
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		b.Fatal(err)
	}
	l.env = append(slices.Clone(l.env), "TMPDIR="+tmp)
	archive := filepath.Join(filepath.Dir(l.images), "ckpt.archive")
	l.setup(b)

	var s exportSamples
	plain := func(measure bool) {
		n := len(l.samples.CheckpointMs)
		l.cycle(b, true) // records into l.samples; copied below
		if measure {
			s.PlainCkptMs = append(s.PlainCkptMs, l.samples.CheckpointMs[n])
			s.PlainRestoreMs = append(s.PlainRestoreMs, l.samples.RestoreMs[n])
			s.PlainRSSMiB = append(s.PlainRSSMiB, l.samples.CkptRSSMiB[n])
			s.ImageMiB = append(s.ImageMiB, l.samples.ImageMiB[n])
		}
	}
	export := func(measure bool) {
		ck, rs, size := l.exportCycle(b, archive, compress, tmp)
		if measure {
			s.ExportCkptMs = append(s.ExportCkptMs, ms(ck.Wall))
			s.ImportRestoreMs = append(s.ImportRestoreMs, ms(rs.Wall))
			s.ExportRSSMiB = append(s.ExportRSSMiB, float64(ck.PeakRSSKiB)/1024)
			s.ArchiveMiB = append(s.ArchiveMiB, float64(size)/(1<<20))
		}
	}
	for range cfg.warmup {
		plain(false)
		export(false)
	}
	i := 0
	for b.Loop() {
		if i%2 == 0 {
			plain(true)
			export(true)
		} else {
			export(true)
			plain(true)
		}
		i++
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(median(s.PlainCkptMs), "plain-ckpt-ms")
	b.ReportMetric(median(s.ExportCkptMs), "export-ckpt-ms")

	machine.LoadAfter = loadavg()
	machine.DurationS = time.Since(started).Seconds()
	rep := exportReport{Machine: machine, MiB: mib, Runs: i, Compress: compress, Samples: s}
	table := rep.markdown()
	publishReport(b, cfg.out, "export", rep, table)
}

type exportSamples struct {
	PlainCkptMs     []float64 `json:"plain_checkpoint_ms"`
	ExportCkptMs    []float64 `json:"export_checkpoint_ms"`
	PlainRestoreMs  []float64 `json:"plain_restore_ms"`
	ImportRestoreMs []float64 `json:"import_restore_ms"`
	PlainRSSMiB     []float64 `json:"plain_checkpoint_peak_rss_mib"`
	ExportRSSMiB    []float64 `json:"export_checkpoint_peak_rss_mib"`
	ImageMiB        []float64 `json:"image_mib"`
	ArchiveMiB      []float64 `json:"archive_mib"`
}

// exportCycle checkpoints into an archive, restores from it and checks the
// workload; it returns the two commands' measurements and the archive size.
func (l *lane) exportCycle(b *testing.B, archive, compress, tmp string) (ck, rs measured, size int64) {
	_ = os.Remove(archive)
	errLog := filepath.Join(filepath.Dir(l.images), "export.stderr")
	errf, err := os.Create(errLog)
	if err != nil {
		b.Fatal(err)
	}
	ck, err = run(l.rt("checkpoint", "--export", archive, "--compress", compress, l.id), l.env,
		[3]*os.File{l.devnul, errf, errf}, l.cfg.timeout, l.cfg.trace)
	errf.Close()
	if err != nil {
		out, _ := os.ReadFile(errLog)
		b.Fatalf("checkpoint --export (%d MiB): %v\n%s", l.mib, err, out)
	}
	fi, err := os.Stat(archive)
	if err != nil {
		b.Fatal(err)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		b.Fatalf("checkpoint --export left %d entries in $TMPDIR %s", len(left), tmp)
	}
	_ = os.Remove(l.pidf)
	rs, err = run(l.rt("restore", "-d", "--bundle", l.bundle, "--import", archive, "--pid-file", l.pidf, l.id), l.env,
		l.stdio, l.cfg.timeout, l.cfg.trace)
	if err != nil {
		b.Fatalf("restore --import (%d MiB): %v (runtime output in %s)", l.mib, err, l.logf.Name())
	}
	if _, err := l.verify(); err != nil {
		b.Fatalf("restore --import (%d MiB): the restored workload is broken: %v", l.mib, err)
	}
	_ = os.Remove(archive)
	return ck, rs, fi.Size()
}

type exportReport struct {
	Machine  machine       `json:"machine"`
	MiB      int           `json:"mib"`
	Runs     int           `json:"runs"`
	Compress string        `json:"compress"`
	Samples  exportSamples `json:"samples"`
}

// exportTarget is issue 6's bound on checkpoint --export over a plain one.
const exportTarget = 1.5

func (r exportReport) markdown() string {
	var sb strings.Builder
	m := r.Machine
	s := r.Samples
	fmt.Fprintf(&sb, "runcr checkpoint --export (--compress %s) against a plain checkpoint, %s, medians of %d runs each (alternating), images, archive and $TMPDIR on tmpfs.\n",
		r.Compress, sizeName(r.MiB), r.Runs)
	fmt.Fprintf(&sb, "%s; %s, %d CPUs, %.1f GiB, kernel %s; %s (tree %s); criu %s; load %s -> %s.\n\n",
		m.Date, m.CPU, m.CPUs, m.MemTotalGiB, m.Kernel, m.Runcr, m.Source, m.CriuVersion, m.LoadBefore, m.LoadAfter)
	sb.WriteString("| metric | plain | export | export/plain | paired ratios: median [p25, p75] | target |\n")
	sb.WriteString("| --- | ---: | ---: | ---: | :---: | --- |\n")
	add := func(metric, unit string, plain, export []float64, target float64) {
		var pairs []float64
		for i := range min(len(plain), len(export)) {
			if plain[i] > 0 {
				pairs = append(pairs, export[i]/plain[i])
			}
		}
		ratio := 0.0
		if median(plain) > 0 {
			ratio = median(export) / median(plain)
		}
		verdict := ""
		if target > 0 {
			verdict = fmt.Sprintf("≤ %.2f: met", target)
			if ratio > target {
				verdict = fmt.Sprintf("≤ %.2f: MISSED by %.0f%% of the plain time", target, (ratio-target)*100)
			}
		}
		fmt.Fprintf(&sb, "| %s | %s | %s | %.3f | %.2f [%.2f, %.2f] | %s |\n", metric, num(median(plain), unit), num(median(export), unit),
			ratio, median(pairs), quantile(pairs, 0.25), quantile(pairs, 0.75), verdict)
	}
	add("checkpoint wall time", "ms", s.PlainCkptMs, s.ExportCkptMs, exportTarget)
	add("restore wall time (--image-path / --import)", "ms", s.PlainRestoreMs, s.ImportRestoreMs, 0)
	add("size on disk (images / archive)", "MiB", s.ImageMiB, s.ArchiveMiB, 0)
	if len(s.ExportRSSMiB) > 0 && median(s.ExportRSSMiB) > 0 {
		add("runcr peak RSS, checkpoint", "MiB", s.PlainRSSMiB, s.ExportRSSMiB, 0)
	}
	return sb.String()
}
