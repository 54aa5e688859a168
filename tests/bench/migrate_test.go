//go:build linux

package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkMigrate measures `runcr migrate` over exec: (to `runcr
// receive` on this host, another --root and bundle) against a plain
// checkpoint and restore of the same container on one host (issue 12:
// downtime at most 1.2x). Per size, one runcr container goes back and
// forth between two bundles and roots, alternating a plain cycle
// (checkpoint --image-path then restore, both on tmpfs) with a migration
// and which comes first; every restore and migration is checked as in
// BenchmarkCheckpointRestore. Downtime is, for the migration, its own
// report (frozen on the source until the target reports it running), for
// the plain cycle the checkpoint's and the restore's wall times together
// (from before the freeze to after the container runs: an upper bound by
// the runtimes' start-up, a few ms each). $TMPDIR, where migrate and
// receive keep their temporary images, is on the bench's tmpfs. Besides loadConfig's environment:
//
//	BENCH_MIGRATE_MIB       sizes, comma-separated (default 256,1024)
//	BENCH_MIGRATE_COMPRESS  migrate's --compress (default zstd, its default)
func BenchmarkMigrate(b *testing.B) {
	cfg := loadConfig(b)
	sizes := []int{256, 1024}
	if v := os.Getenv("BENCH_MIGRATE_MIB"); v != "" {
		sizes = nil
		for _, s := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || n <= 0 {
				b.Fatalf("BENCH_MIGRATE_MIB: bad size %q", s)
			}
			sizes = append(sizes, n)
		}
	}
	compress := os.Getenv("BENCH_MIGRATE_COMPRESS")
	if compress == "" {
		compress = "zstd"
	}
	machine := describeMachine(cfg)
	started := time.Now()
	rep := migrateReport{Compress: compress}
	lanes := make([]*lane, len(sizes))
	for i, mib := range sizes {
		l := newLane(b, cfg, "runcr", cfg.runcrCopy, mib)
		defer l.teardown()
		lanes[i] = l
		// migrate's temporary images (and receive's) on the tmpfs too.
		tmp := filepath.Join(filepath.Dir(l.images), "tmp")
		if err := os.MkdirAll(tmp, 0o700); err != nil {
			b.Fatal(err)
		}
		l.env = append(slices.Clone(l.env), "TMPDIR="+tmp)
		l.setup(b)
	}
	sets := make([]migrateSamples, len(sizes))
	plains := make([]func(bool), len(sizes))
	migrs := make([]func(bool), len(sizes))
	for i, l := range lanes {
		other := &migrateHost{id: l.id + "-m", root: l.root + "-m", bundle: filepath.Join(filepath.Dir(l.bundle), "bundle-m")}
		defer func() {
			null := [3]*os.File{l.devnul, l.devnul, l.devnul}
			// Whichever side the container is on (l.teardown: the lane's).
			_ = runQuiet(l, null, other.root, "delete", "--force", other.id)
		}()
		s := &sets[i]
		plains[i] = func(measure bool) {
			n := len(l.samples.CheckpointMs)
			l.cycle(b, true)
			if measure {
				s.PlainCkptMs = append(s.PlainCkptMs, l.samples.CheckpointMs[n])
				s.PlainRestoreMs = append(s.PlainRestoreMs, l.samples.RestoreMs[n])
				s.PlainDowntimeMs = append(s.PlainDowntimeMs, l.samples.CheckpointMs[n]+l.samples.RestoreMs[n])
			}
		}
		migrs[i] = func(measure bool) {
			r := l.migrateTo(b, other, compress)
			if measure {
				s.DowntimeMs = append(s.DowntimeMs, r.DowntimeSeconds*1000)
				s.TotalMs = append(s.TotalMs, r.TotalSeconds*1000)
				s.WallMs = append(s.WallMs, r.wallMs)
				s.SentMiB = append(s.SentMiB, float64(r.BytesSent)/(1<<20))
			}
		}
	}
	for i := range lanes {
		for range cfg.warmup {
			plains[i](false)
			migrs[i](false)
		}
	}
	runs := 0
	for b.Loop() {
		for i := range lanes {
			if runs%2 == 0 {
				plains[i](true)
				migrs[i](true)
			} else {
				migrs[i](true)
				plains[i](true)
			}
		}
		runs++
	}
	for i, l := range lanes {
		rep.Sizes = append(rep.Sizes, migrateSize{MiB: l.mib, Runs: runs, Samples: sets[i]})
	}
	b.ReportMetric(0, "ns/op")
	machine.LoadAfter = loadavg()
	machine.DurationS = time.Since(started).Seconds()
	rep.Machine = machine
	table := rep.markdown()
	publishReport(b, cfg.out, "migrate", rep, table)
}

// migrateHost is where the container goes: its id, --root and bundle.
type migrateHost struct{ id, root, bundle string }

func runQuiet(l *lane, stdio [3]*os.File, root string, args ...string) error {
	saved := l.root
	l.root = root
	defer func() { l.root = saved }()
	return l.plain(stdio, args...)
}

type migrateStats struct {
	DowntimeSeconds float64 `json:"downtime_seconds"`
	TotalSeconds    float64 `json:"total_seconds"`
	BytesSent       int64   `json:"bytes_sent"`
	TargetPid       int     `json:"target_pid"`
	wallMs          float64
}

// migrateTo migrates the lane's container to h over exec: and makes h the
// lane's place (h takes the old one), then checks the workload.
func (l *lane) migrateTo(b *testing.B, h *migrateHost, compress string) migrateStats {
	dir := filepath.Dir(l.images)
	outLog, errLog := filepath.Join(dir, "migrate.stdout"), filepath.Join(dir, "migrate.stderr")
	outf, err := os.Create(outLog)
	if err != nil {
		b.Fatal(err)
	}
	errf, err := os.Create(errLog)
	if err != nil {
		b.Fatal(err)
	}
	dest := fmt.Sprintf("exec:exec %s --root %s receive --bundle %s --id %s --stdio-log %s",
		l.bin, h.root, h.bundle, h.id, filepath.Join(dir, h.id+".stdio.log"))
	m, err := run(l.rt("migrate", "--print-stats", "--compress", compress, l.id, dest), l.env,
		[3]*os.File{l.devnul, outf, errf}, l.cfg.timeout, false)
	outf.Close()
	errf.Close()
	if err != nil {
		out, _ := os.ReadFile(errLog)
		b.Fatalf("migrate (%d MiB): %v\n%s", l.mib, err, out)
	}
	var st migrateStats
	out, _ := os.ReadFile(outLog)
	if err := json.Unmarshal(out, &st); err != nil {
		b.Fatalf("migrate --print-stats: %v: %s", err, out)
	}
	st.wallMs = ms(m.Wall)
	// The lane now lives at h; h takes the old place.
	old := migrateHost{l.id, l.root, l.bundle}
	l.id, l.root, l.bundle = h.id, h.root, h.bundle
	l.state = filepath.Join(l.bundle, "rootfs", "bench-state")
	*h = old
	if err := os.WriteFile(l.pidf, []byte(strconv.Itoa(st.TargetPid)), 0o644); err != nil {
		b.Fatal(err)
	}
	if _, err := l.verify(); err != nil {
		b.Fatalf("migrate (%d MiB): the migrated workload is broken: %v", l.mib, err)
	}
	return st
}

type migrateSamples struct {
	PlainCkptMs     []float64 `json:"plain_checkpoint_ms"`
	PlainRestoreMs  []float64 `json:"plain_restore_ms"`
	PlainDowntimeMs []float64 `json:"plain_downtime_ms"`
	DowntimeMs      []float64 `json:"migrate_downtime_ms"`
	TotalMs         []float64 `json:"migrate_total_ms"`
	WallMs          []float64 `json:"migrate_wall_ms"`
	SentMiB         []float64 `json:"migrate_sent_mib"`
}

type migrateSize struct {
	MiB     int            `json:"mib"`
	Runs    int            `json:"runs"`
	Samples migrateSamples `json:"samples"`
}

type migrateReport struct {
	Machine  machine       `json:"machine"`
	Compress string        `json:"compress"`
	Sizes    []migrateSize `json:"sizes"`
}

// migrateTarget is issue 12's bound on migrate's downtime over a plain
// checkpoint and restore.
const migrateTarget = 1.2

func (r migrateReport) markdown() string {
	var sb strings.Builder
	m := r.Machine
	fmt.Fprintf(&sb, "runcr migrate over exec: (runcr receive on the same host, --compress %s) against runcr checkpoint + restore of the same container, medians (alternating), images and bundles on tmpfs.\n", r.Compress)
	fmt.Fprintf(&sb, "%s; %s, %d CPUs, %.1f GiB, kernel %s; %s (tree %s); criu %s; load %s -> %s.\n\n",
		m.Date, m.CPU, m.CPUs, m.MemTotalGiB, m.Kernel, m.Runcr, m.Source, m.CriuVersion, m.LoadBefore, m.LoadAfter)
	sb.WriteString("| size | runs | plain ckpt + restore | migrate downtime | downtime ratio: median, paired [p25, p75] | migrate total (wall) | sent | target |\n")
	sb.WriteString("| --- | ---: | ---: | ---: | :---: | ---: | ---: | --- |\n")
	for _, z := range r.Sizes {
		s := z.Samples
		var pairs []float64
		for i := range min(len(s.PlainDowntimeMs), len(s.DowntimeMs)) {
			if s.PlainDowntimeMs[i] > 0 {
				pairs = append(pairs, s.DowntimeMs[i]/s.PlainDowntimeMs[i])
			}
		}
		ratio := 0.0
		if median(s.PlainDowntimeMs) > 0 {
			ratio = median(s.DowntimeMs) / median(s.PlainDowntimeMs)
		}
		verdict := fmt.Sprintf("≤ %.2f: met", migrateTarget)
		if ratio > migrateTarget {
			verdict = fmt.Sprintf("≤ %.2f: MISSED by %.0f%% of the plain time", migrateTarget, (ratio-migrateTarget)*100)
		}
		fmt.Fprintf(&sb, "| %s | %d | %s (%s + %s) | %s | %.3f, %.2f [%.2f, %.2f] | %s (%s) | %s | %s |\n",
			sizeName(z.MiB), z.Runs, num(median(s.PlainDowntimeMs), "ms"), num(median(s.PlainCkptMs), "ms"), num(median(s.PlainRestoreMs), "ms"),
			num(median(s.DowntimeMs), "ms"), ratio, median(pairs), quantile(pairs, 0.25), quantile(pairs, 0.75),
			num(median(s.TotalMs), "ms"), num(median(s.WallMs), "ms"), num(median(s.SentMiB), "MiB"), verdict)
	}
	return sb.String()
}
