//go:build linux

// Package bench compares runcr's checkpoint and restore with runc's, on
// the same workload, with Go's benchmark harness. Run it through
// tests/bench/run.sh (`make bench`), which builds the workload, provides a
// tmpfs and sets the environment below; see BENCHMARKS.md.
//
//	BENCH_RUNCR    runcr binary (required)
//	BENCH_RUNC     runc binary (required)
//	BENCH_ROOTFS   busybox rootfs directory (required)
//	BENCH_MEMHOG   the static tests/bench/memhog binary (required)
//	BENCH_WORKDIR  a directory on tmpfs for bundles, state and images (required)
//	BENCH_CRIU     criu binary both runtimes run (required)
//	BENCH_RUNC_ENV space-separated VAR=value pairs for runc only (CRIU_FAULT=130
//	               where hardware breakpoints don't fire)
//	BENCH_SIZES    MiB sizes, comma-separated (default 16,256,1024)
//	BENCH_WARMUP   unmeasured cycles per runtime and size (default 1)
//	BENCH_OUT      directory for results.json and results.md (default: none written)
//	BENCH_TIMEOUT  seconds one runtime command may take (default 300)
//	BENCH_TRACE    0 disables the ptrace-based peak RSS measurement
//	BENCH_SOURCE   what runcr was built from, for the record (git describe)
//	BENCH_DOWNTIME 0 skips the --leave-running downtime measurement
//	               (downtime_test.go)
//
// For experiments (tests/bench/profile.sh), unset in `make bench`; each
// changes the runcr lane only, so the runcr/runc ratio shows what runcr
// would gain by doing the same:
//
//	BENCH_RUNCR_ENV         space-separated VAR=value pairs for runcr
//	BENCH_RUNCR_CRIU_CONFIG a CRIU configuration file, named in the runcr
//	                        bundle's org.criu.config annotation
//	BENCH_RUNCR_WRAP        a program runcr's checkpoint and restore are run
//	                        through: WRAP RUNCR ARGS...
//
// The number of measured cycles per runtime and size is -benchtime=Nx.
package bench

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/checkpoint-restore/go-criu/v7/stats"
	"golang.org/x/sys/unix"
)

type config struct {
	runcr, runc, rootfs, memhog, workdir, criu string
	runcEnv, runcrEnv                          []string
	runcrCriuConfig, runcrWrap                 string
	runcrCopy, runcCopy                        string // what the lanes run
	sizes                                      []int
	warmup                                     int
	out                                        string
	timeout                                    time.Duration
	trace                                      bool
	baseEnv                                    []string // PATH with the chosen criu first, no CRIU_FAULT
}

func loadConfig(b *testing.B) *config {
	c := &config{
		runcr:   os.Getenv("BENCH_RUNCR"),
		runc:    os.Getenv("BENCH_RUNC"),
		rootfs:  os.Getenv("BENCH_ROOTFS"),
		memhog:  os.Getenv("BENCH_MEMHOG"),
		workdir: os.Getenv("BENCH_WORKDIR"),
		criu:    os.Getenv("BENCH_CRIU"),
		out:     os.Getenv("BENCH_OUT"),
		warmup:  1,
		timeout: 300 * time.Second,
		trace:   os.Getenv("BENCH_TRACE") != "0",
	}
	for _, v := range []string{c.runcr, c.runc, c.rootfs, c.memhog, c.workdir, c.criu} {
		if v == "" {
			b.Skip("set BENCH_RUNCR, BENCH_RUNC, BENCH_ROOTFS, BENCH_MEMHOG, BENCH_WORKDIR and BENCH_CRIU (or run `make bench`)")
		}
	}
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	c.runcEnv = strings.Fields(os.Getenv("BENCH_RUNC_ENV"))
	c.runcrEnv = strings.Fields(os.Getenv("BENCH_RUNCR_ENV"))
	c.runcrCriuConfig = os.Getenv("BENCH_RUNCR_CRIU_CONFIG")
	c.runcrWrap = os.Getenv("BENCH_RUNCR_WRAP")
	sizes := os.Getenv("BENCH_SIZES")
	if sizes == "" {
		sizes = "16,256,1024"
	}
	for _, s := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			b.Fatalf("BENCH_SIZES: bad size %q", s)
		}
		c.sizes = append(c.sizes, n)
	}
	if v := os.Getenv("BENCH_WARMUP"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			b.Fatalf("BENCH_WARMUP: %q", v)
		}
		c.warmup = n
	}
	if v := os.Getenv("BENCH_TIMEOUT"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			b.Fatalf("BENCH_TIMEOUT: %q", v)
		}
		c.timeout = time.Duration(n) * time.Second
	}
	var st unix.Statfs_t
	if err := unix.Statfs(c.workdir, &st); err != nil {
		b.Fatalf("BENCH_WORKDIR: %v", err)
	}
	if st.Type != unix.TMPFS_MAGIC {
		b.Fatalf("BENCH_WORKDIR %s is not on tmpfs; the images must be", c.workdir)
	}
	// Both runtimes find CRIU as "criu" on PATH (libcontainer and go-criu
	// do), so the chosen binary is offered first on PATH under that name.
	bin := filepath.Join(c.workdir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		b.Fatal(err)
	}
	_ = os.Remove(filepath.Join(bin, "criu"))
	if err := os.Symlink(c.criu, filepath.Join(bin, "criu")); err != nil {
		b.Fatal(err)
	}
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		switch {
		case k == "CRIU_FAULT":
			continue // runcr must decide for itself; runc gets BENCH_RUNC_ENV
		case strings.HasPrefix(k, "BENCH_"):
			continue
		case k == "PATH":
			kv = "PATH=" + bin + ":" + v
		}
		c.baseEnv = append(c.baseEnv, kv)
	}
	// The runtimes run from fresh copies on the bench's tmpfs, made the
	// same way: a binary's resident pages (part of its RSS) depend on how
	// its file sits in the page cache (large folios are mapped whole), which
	// differs between an old, a just-built and a just-evicted file by up to
	// 3 MiB here. Copies make the two runtimes' RSS comparable.
	c.runcrCopy = copyBinary(b, c.runcr, filepath.Join(c.workdir, "runtimes", "runcr"))
	c.runcCopy = copyBinary(b, c.runc, filepath.Join(c.workdir, "runtimes", "runc"))
	return c
}

func copyBinary(b *testing.B, src, dst string) string {
	data, err := os.ReadFile(src)
	if err != nil {
		b.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(dst, data, 0o755); err != nil {
		b.Fatal(err)
	}
	return dst
}

// lane is one runtime's container at one size: run once, then
// checkpointed, restored and checked over and over.
type lane struct {
	cfg    *config
	name   string // "runcr" or "runc"
	bin    string
	env    []string
	wrap   string // program the measured commands run through, if any
	conf   string // CRIU configuration file, if any
	mib    int
	id     string
	bundle string
	root   string
	images string
	pidf   string
	state  string // the workload's state file, seen from the host
	logf   *os.File
	stdio  [3]*os.File // the container's: a pipe drained into logf
	devnul *os.File

	seed  uint64
	token string
	check int

	// debugLog, if set, is where the measured commands log with --debug
	// (BenchmarkDigest reads what runcr says it spent on the digests).
	debugLog string

	samples samples
}

type samples struct {
	CheckpointMs   []float64 `json:"checkpoint_ms"`
	RestoreMs      []float64 `json:"restore_ms"`
	FrozenMs       []float64 `json:"criu_frozen_ms"`
	FreezingMs     []float64 `json:"criu_freezing_ms"`
	MemdumpMs      []float64 `json:"criu_memdump_ms"`
	MemwriteMs     []float64 `json:"criu_memwrite_ms"`
	CriuRestoreMs  []float64 `json:"criu_restore_ms"`
	ImageMiB       []float64 `json:"image_mib"`
	CkptRSSMiB     []float64 `json:"checkpoint_peak_rss_mib"`
	RestRSSMiB     []float64 `json:"restore_peak_rss_mib"`
	CkptRSSKidsMiB []float64 `json:"checkpoint_ru_maxrss_incl_children_mib"`
	RestRSSKidsMiB []float64 `json:"restore_ru_maxrss_incl_children_mib"`
	CkptCPUms      []float64 `json:"checkpoint_cpu_ms"`
	RestCPUms      []float64 `json:"restore_cpu_ms"`
	VerifyMs       []float64 `json:"verify_ms"`
	CkptAnonMiB    []float64 `json:"checkpoint_rss_anon_at_exit_mib"`
	CkptFileMiB    []float64 `json:"checkpoint_rss_file_at_exit_mib"`
	RestAnonMiB    []float64 `json:"restore_rss_anon_at_exit_mib"`
	RestFileMiB    []float64 `json:"restore_rss_file_at_exit_mib"`
	TraceStops     []float64 `json:"ptrace_stops_per_command"`
	// From CRIU's logs: start-up (kernel feature detection, unless
	// cached) and the whole run, as CRIU timed them.
	CriuDumpStartupMs    []float64 `json:"criu_dump_startup_ms"`
	CriuDumpLogMs        []float64 `json:"criu_dump_log_ms"`
	CriuRestoreStartupMs []float64 `json:"criu_restore_startup_ms"`
	CriuRestoreLogMs     []float64 `json:"criu_restore_log_ms"`
	// Downtime with --leave-running (downtime_test.go).
	Downtime downtime `json:"downtime"`
}

func newLane(b *testing.B, cfg *config, name, bin string, mib int) *lane {
	l := &lane{cfg: cfg, name: name, bin: bin, mib: mib, env: cfg.baseEnv}
	switch name {
	case "runc":
		l.env = append(slices.Clone(cfg.baseEnv), cfg.runcEnv...)
	case "runcr":
		l.env = append(slices.Clone(cfg.baseEnv), cfg.runcrEnv...)
		l.wrap, l.conf = cfg.runcrWrap, cfg.runcrCriuConfig
	}
	l.id = fmt.Sprintf("bench-%d-%s-%d", os.Getpid(), name, mib)
	dir := filepath.Join(cfg.workdir, l.id)
	l.bundle = filepath.Join(dir, "bundle")
	l.root = filepath.Join(cfg.workdir, "state")
	l.images = filepath.Join(dir, "images")
	l.pidf = filepath.Join(dir, "pid")
	l.state = filepath.Join(l.bundle, "rootfs", "bench-state")
	l.seed = rand.Uint64()
	if err := os.MkdirAll(l.bundle, 0o755); err != nil {
		b.Fatal(err)
	}
	var err error
	if l.logf, err = os.Create(filepath.Join(dir, "container.log")); err != nil {
		b.Fatal(err)
	}
	if l.devnul, err = os.Open(os.DevNull); err != nil {
		b.Fatal(err)
	}
	// The container's stdio is a pipe: CRIU can't dump a process whose
	// stdio is a host file. Whatever it (or the runtime, which shares it
	// when restoring detached) writes is drained into container.log.
	r, w, err := os.Pipe()
	if err != nil {
		b.Fatal(err)
	}
	l.stdio = [3]*os.File{r, w, w}
	go drain(r, l.logf)
	return l
}

// drain copies what is written to the container's stdio pipe (by the
// container, or by a runtime restoring it detached, which shares it) to
// the log. The pipe is the container's stdin too; the workload never reads.
func drain(r *os.File, log *os.File) {
	buf := make([]byte, 4096)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			_, _ = log.Write(buf[:n])
		}
		if err != nil {
			return
		}
	}
}

// rt is the argv of a measured runtime command.
func (l *lane) rt(args ...string) []string {
	argv := []string{l.bin, "--root", l.root}
	if l.debugLog != "" {
		argv = append(argv, "--debug", "--log", l.debugLog)
	}
	argv = append(argv, args...)
	if l.wrap != "" {
		argv = append([]string{l.wrap}, argv...)
	}
	return argv
}

// plain runs an unmeasured runtime command.
func (l *lane) plain(stdio [3]*os.File, args ...string) error {
	cmd := exec.Command(l.bin, append([]string{"--root", l.root}, args...)...)
	cmd.Env = l.env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdio[0], stdio[1], stdio[2]
	return cmd.Run()
}

// setup makes the bundle and starts the container, and waits until the
// workload has filled its memory.
func (l *lane) setup(b *testing.B) {
	rootfs := filepath.Join(l.bundle, "rootfs")
	if out, err := exec.Command("cp", "-a", l.cfg.rootfs, rootfs).CombinedOutput(); err != nil {
		b.Fatalf("copying rootfs: %v: %s", err, out)
	}
	if out, err := exec.Command("cp", l.cfg.memhog, filepath.Join(rootfs, "memhog")).CombinedOutput(); err != nil {
		b.Fatalf("copying memhog: %v: %s", err, out)
	}
	cmd := exec.Command(l.cfg.runc, "spec", "--bundle", l.bundle)
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("runc spec: %v: %s", err, out)
	}
	workload := fmt.Sprintf("exec /memhog -mib %d -seed %d -state /bench-state", l.mib, l.seed)
	if err := editConfig(filepath.Join(l.bundle, "config.json"), workload, l.conf); err != nil {
		b.Fatal(err)
	}
	if err := l.plain(l.stdio, "run", "-d", "--bundle", l.bundle, l.id); err != nil {
		b.Fatalf("%s run: %v (see %s)", l.name, err, l.logf.Name())
	}
	st, err := l.waitState(0, 120*time.Second)
	if err != nil {
		b.Fatalf("%s: workload did not start: %v", l.name, err)
	}
	l.token = st["token"]
}

// editConfig does what `jq '.root.readonly=false | .process.terminal=false
// | .process.args=["/bin/sh","-c",W]'` would, keeping every other field;
// and, given a CRIU configuration file, names it in the annotation
// libcontainer reads it from.
func editConfig(path, workload, criuConfig string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var spec map[string]any
	if err := json.Unmarshal(data, &spec); err != nil {
		return err
	}
	spec["root"].(map[string]any)["readonly"] = false
	proc := spec["process"].(map[string]any)
	proc["terminal"] = false
	proc["args"] = []string{"/bin/sh", "-c", workload}
	if criuConfig != "" {
		ann, _ := spec["annotations"].(map[string]any)
		if ann == nil {
			ann = map[string]any{}
		}
		ann["org.criu.config"] = criuConfig
		spec["annotations"] = ann
	}
	data, err = json.MarshalIndent(spec, "", "\t")
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}

// teardown kills and deletes the container, if any.
func (l *lane) teardown() {
	null := [3]*os.File{l.devnul, l.devnul, l.devnul}
	_ = l.plain(null, "kill", l.id, "KILL")
	_ = l.plain(null, "delete", "--force", l.id)
	for _, f := range l.stdio {
		f.Close()
	}
	_ = os.RemoveAll(l.images)
}

// cycle checkpoints, restores and checks the container once; measured
// cycles add their numbers to the lane's samples.
func (l *lane) cycle(b *testing.B, measure bool) {
	if downtimeEnabled() {
		l.leaveRunning(b, measure)
	}
	if err := os.RemoveAll(l.images); err != nil {
		b.Fatal(err)
	}
	ckptLog := filepath.Join(filepath.Dir(l.images), "checkpoint.stderr")
	errf, err := os.Create(ckptLog)
	if err != nil {
		b.Fatal(err)
	}
	ck, err := run(l.rt("checkpoint", "--image-path", l.images, l.id), l.env,
		[3]*os.File{l.devnul, errf, errf}, l.cfg.timeout, l.cfg.trace)
	errf.Close()
	if err != nil {
		out, _ := os.ReadFile(ckptLog)
		b.Fatalf("%s checkpoint (%d MiB): %v\n%s\n%s", l.name, l.mib, err, out, tail(filepath.Join(l.images, "dump.log"), 15))
	}
	ds, err := dumpStats(l.images)
	if err != nil {
		b.Fatalf("%s: stats-dump: %v", l.name, err)
	}
	size, err := imageSize(l.images)
	if err != nil {
		b.Fatal(err)
	}

	dumpStart, dumpEnd := criuLogTimes(filepath.Join(l.images, "dump.log"), "Dumping processes (pid")

	_ = os.Remove(l.pidf)
	rs, err := run(l.rt("restore", "-d", "--bundle", l.bundle, "--image-path", l.images, "--pid-file", l.pidf, l.id), l.env,
		l.stdio, l.cfg.timeout, l.cfg.trace)
	if err != nil {
		b.Fatalf("%s restore (%d MiB): %v (runtime output in %s)\n%s", l.name, l.mib, err, l.logf.Name(), tail(filepath.Join(l.images, "restore.log"), 15))
	}
	restTime := 0.0
	if f, err := os.Open(l.images); err == nil {
		if st, err := stats.CriuGetRestoreStats(f); err == nil {
			restTime = float64(st.GetRestoreTime()) / 1000
		}
		f.Close()
	}

	restStart, restEnd := criuLogTimes(filepath.Join(l.images, "restore.log"), "Running pre-restore scripts")

	verify, err := l.verify()
	if err != nil {
		b.Fatalf("%s (%d MiB): the restored workload is broken: %v", l.name, l.mib, err)
	}
	if !measure {
		return
	}
	s := &l.samples
	s.CheckpointMs = append(s.CheckpointMs, ms(ck.Wall))
	s.RestoreMs = append(s.RestoreMs, ms(rs.Wall))
	s.FrozenMs = append(s.FrozenMs, float64(ds.GetFrozenTime())/1000)
	s.FreezingMs = append(s.FreezingMs, float64(ds.GetFreezingTime())/1000)
	s.MemdumpMs = append(s.MemdumpMs, float64(ds.GetMemdumpTime())/1000)
	s.MemwriteMs = append(s.MemwriteMs, float64(ds.GetMemwriteTime())/1000)
	s.CriuRestoreMs = append(s.CriuRestoreMs, restTime)
	s.ImageMiB = append(s.ImageMiB, float64(size)/(1<<20))
	s.CkptRSSMiB = append(s.CkptRSSMiB, float64(ck.PeakRSSKiB)/1024)
	s.RestRSSMiB = append(s.RestRSSMiB, float64(rs.PeakRSSKiB)/1024)
	s.CkptRSSKidsMiB = append(s.CkptRSSKidsMiB, float64(ck.MaxRSSWithChildrenKiB)/1024)
	s.RestRSSKidsMiB = append(s.RestRSSKidsMiB, float64(rs.MaxRSSWithChildrenKiB)/1024)
	s.CkptCPUms = append(s.CkptCPUms, ms(ck.UserCPU+ck.SysCPU))
	s.RestCPUms = append(s.RestCPUms, ms(rs.UserCPU+rs.SysCPU))
	s.VerifyMs = append(s.VerifyMs, verify)
	s.CkptAnonMiB = append(s.CkptAnonMiB, float64(ck.RssAnonKiB)/1024)
	s.CkptFileMiB = append(s.CkptFileMiB, float64(ck.RssFileKiB)/1024)
	s.RestAnonMiB = append(s.RestAnonMiB, float64(rs.RssAnonKiB)/1024)
	s.RestFileMiB = append(s.RestFileMiB, float64(rs.RssFileKiB)/1024)
	s.TraceStops = append(s.TraceStops, float64(ck.TraceStops), float64(rs.TraceStops))
	s.CriuDumpStartupMs = append(s.CriuDumpStartupMs, dumpStart)
	s.CriuDumpLogMs = append(s.CriuDumpLogMs, dumpEnd)
	s.CriuRestoreStartupMs = append(s.CriuRestoreStartupMs, restStart)
	s.CriuRestoreLogMs = append(s.CriuRestoreLogMs, restEnd)
}

// verify asks the restored workload to check every word of its memory
// and requires: the same token (the same process, not a fresh start), the
// next check number, and no bad word.
func (l *lane) verify() (float64, error) {
	data, err := os.ReadFile(l.pidf)
	if err != nil {
		return 0, fmt.Errorf("pid file: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		return 0, fmt.Errorf("pid file: %q", data)
	}
	if err := unix.Kill(pid, unix.SIGUSR1); err != nil {
		return 0, fmt.Errorf("signalling pid %d: %w", pid, err)
	}
	st, err := l.waitState(l.check+1, 120*time.Second)
	if err != nil {
		return 0, err
	}
	switch {
	case st["token"] != l.token:
		return 0, fmt.Errorf("token %s, was %s: the workload was started afresh, not restored", st["token"], l.token)
	case st["seed"] != strconv.FormatUint(l.seed, 10):
		return 0, fmt.Errorf("seed %s, want %d", st["seed"], l.seed)
	case st["result"] != "OK":
		return 0, fmt.Errorf("memory check %s: %s of %d words differ from the pattern", st["result"], st["bad"], l.mib<<17)
	}
	l.check++
	v, _ := strconv.ParseFloat(st["ms"], 64)
	return v, nil
}

// waitState waits for the state file to report check number n.
func (l *lane) waitState(n int, timeout time.Duration) (map[string]string, error) {
	deadline := time.Now().Add(timeout)
	var last string
	for {
		data, err := os.ReadFile(l.state)
		if err == nil {
			last = string(data)
			st := parseState(last)
			if c, err := strconv.Atoi(st["check"]); err == nil && c >= n {
				if c != n {
					return st, fmt.Errorf("check %d, want %d: %s", c, n, strings.TrimSpace(last))
				}
				return st, nil
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("no check %d within %s; last state %q", n, timeout, strings.TrimSpace(last))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func parseState(s string) map[string]string {
	m := map[string]string{}
	for _, kv := range strings.Fields(s) {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}

// criuLogTimes returns, in ms from CRIU's start, when the first line
// containing marker was logged and when the last line was.
func criuLogTimes(path, marker string) (at, end float64) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, 0
	}
	at = -1
	for line := range strings.Lines(string(data)) {
		ts, ok := strings.CutPrefix(line, "(")
		if !ok {
			continue
		}
		ts, _, ok = strings.Cut(ts, ")")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(ts, 64)
		if err != nil {
			continue
		}
		end = v * 1000
		if at < 0 && strings.Contains(line, marker) {
			at = end
		}
	}
	return max(at, 0), end
}

func dumpStats(dir string) (*stats.DumpStatsEntry, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return stats.CriuGetDumpStats(f)
}

// imageSize is the total size of the checkpoint's files, CRIU's log aside.
func imageSize(dir string) (int64, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	var total int64
	for _, e := range entries {
		if !e.Type().IsRegular() || strings.HasSuffix(e.Name(), ".log") {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			return 0, err
		}
		total += fi.Size()
	}
	return total, nil
}

func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "--- " + path + " (last lines) ---\n" + strings.Join(lines, "\n")
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// results collects every size's lanes for the report.
var results []sizeResult

type sizeResult struct {
	MiB   int                `json:"mib"`
	Runs  int                `json:"runs"`
	Lanes map[string]samples `json:"samples"`
}

// BenchmarkCheckpointRestore runs, for each size, one container under
// runcr and one under runc; each iteration checkpoints, restores and
// checks both, alternating which goes first (runcr, runc, then runc,
// runcr, ...).
func BenchmarkCheckpointRestore(b *testing.B) {
	cfg := loadConfig(b)
	started := time.Now()
	machine := describeMachine(cfg)
	results = nil
	for _, mib := range cfg.sizes {
		b.Run(fmt.Sprintf("%dMiB", mib), func(b *testing.B) {
			lanes := []*lane{
				newLane(b, cfg, "runcr", cfg.runcrCopy, mib),
				newLane(b, cfg, "runc", cfg.runcCopy, mib),
			}
			for _, l := range lanes {
				defer l.teardown()
			}
			for _, l := range lanes {
				l.setup(b)
			}
			for range cfg.warmup {
				for _, l := range lanes {
					l.cycle(b, false)
				}
			}
			i := 0
			for b.Loop() {
				order := lanes
				if i%2 == 1 {
					order = []*lane{lanes[1], lanes[0]}
				}
				for _, l := range order {
					l.cycle(b, true)
				}
				i++
			}
			r := sizeResult{MiB: mib, Runs: i, Lanes: map[string]samples{}}
			for _, l := range lanes {
				r.Lanes[l.name] = l.samples
			}
			results = append(results, r)
			rc, rn := lanes[0].samples, lanes[1].samples
			b.ReportMetric(0, "ns/op") // a cycle of both runtimes means nothing
			b.ReportMetric(median(rc.CheckpointMs), "runcr-ckpt-ms")
			b.ReportMetric(median(rn.CheckpointMs), "runc-ckpt-ms")
			b.ReportMetric(median(rc.RestoreMs), "runcr-restore-ms")
			b.ReportMetric(median(rn.RestoreMs), "runc-restore-ms")
		})
	}
	if len(results) == 0 {
		return
	}
	machine.LoadAfter = loadavg()
	machine.DurationS = time.Since(started).Seconds()
	rep := buildReport(machine, results)
	table := rep.markdown() + phaseTable(results)
	publishReport(b, cfg.out, "results", rep, table)
}

// publishReport prints a benchmark's markdown table and, when dir is
// set, writes the report there as NAME.json and the table as NAME.md.
func publishReport(b *testing.B, dir, name string, rep any, table string) {
	b.Helper()
	fmt.Println()
	fmt.Print(table)
	if dir == "" {
		return
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	data, _ := json.MarshalIndent(rep, "", "  ")
	jsonPath, mdPath := filepath.Join(dir, name+".json"), filepath.Join(dir, name+".md")
	if err := os.WriteFile(jsonPath, append(data, '\n'), 0o644); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(mdPath, []byte(table), 0o644); err != nil {
		b.Fatal(err)
	}
	fmt.Printf("\nwrote %s and %s\n", jsonPath, mdPath)
}
