//go:build linux

package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// BenchmarkDigest measures what the image digests cost (the issue "Hostile
// input", item 5: at most 5 % of a checkpoint and of a restore at 1 GiB).
// One runcr container is checkpointed and restored over and over, as in
// BenchmarkCheckpointRestore, with --debug --log: runcr logs how long the
// checkpoint spent hashing the images once CRIU was done ("hashing N
// bytes of images took D") and the restore verifying them before CRIU
// ran ("verifying N bytes ... took D"), each set against that
// checkpoint's and restore's wall time, which include it. As a
// cross-check from outside, after each cycle the images, still on the
// bench's tmpfs, are read by `runcr inspect` and by `runcr inspect
// --verify`, which checks them as a restore does: the difference is the
// cost of verifying in a process of its own. (This package can't link
// libcheckpoint: go-criu's two stats packages register the same protobuf
// names.)
//
//	BENCH_DIGEST_MIB  workload size (default 1024)
func BenchmarkDigest(b *testing.B) {
	cfg := loadConfig(b)
	mib := 1024
	if v := os.Getenv("BENCH_DIGEST_MIB"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			b.Fatalf("BENCH_DIGEST_MIB: %q", v)
		}
		mib = n
	}
	l := newLane(b, cfg, "runcr", cfg.runcrCopy, mib)
	defer l.teardown()
	l.debugLog = filepath.Join(cfg.workdir, l.id+"-debug.log")
	l.setup(b)
	var hashMs, verifyMs, inspectMs, ckptMs, restMs, frozenMs, sizes []float64
	for range cfg.warmup {
		l.cycle(b, false)
	}
	for b.Loop() {
		if err := os.Truncate(l.debugLog, 0); err != nil && !os.IsNotExist(err) {
			b.Fatal(err)
		}
		n := len(l.samples.CheckpointMs)
		l.cycle(b, true)
		ckptMs = append(ckptMs, l.samples.CheckpointMs[n])
		restMs = append(restMs, l.samples.RestoreMs[n])
		frozenMs = append(frozenMs, l.samples.FrozenMs[n])
		data, err := os.ReadFile(filepath.Join(l.images, "runcr-manifest.json"))
		var m struct {
			Images     map[string]any `json:"images"`
			ImagesSize int64          `json:"images_size"`
		}
		if err == nil {
			err = json.Unmarshal(data, &m)
		}
		if err != nil || m.Images == nil {
			b.Fatalf("%s: no digests in the manifest (%v)", l.images, err)
		}
		sizes = append(sizes, float64(m.ImagesSize)/(1<<20))
		log, err := os.ReadFile(l.debugLog)
		if err != nil {
			b.Fatal(err)
		}
		for _, v := range []struct {
			what string
			to   *[]float64
		}{{"hashing", &hashMs}, {"verifying", &verifyMs}} {
			d, err := loggedDigestTime(string(log), v.what)
			if err != nil {
				b.Fatalf("%s: %v", l.debugLog, err)
			}
			*v.to = append(*v.to, ms(d))
		}
		timed := func(args ...string) float64 {
			start := time.Now()
			if out, err := exec.Command(l.bin, append([]string{"inspect"}, args...)...).CombinedOutput(); err != nil {
				b.Fatalf("runcr inspect %v: %v\n%s", args, err, out)
			}
			return ms(time.Since(start))
		}
		plain := timed(l.images)
		verify := timed("--verify", l.images)
		inspectMs = append(inspectMs, verify-plain)
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(median(hashMs), "hash-ms")
	b.ReportMetric(median(verifyMs), "verify-ms")
	b.ReportMetric(median(inspectMs), "inspect-verify-ms")
	b.ReportMetric(median(ckptMs), "ckpt-ms")
	b.ReportMetric(median(restMs), "restore-ms")
	b.ReportMetric(median(frozenMs), "frozen-ms")
	hashPct := 100 * median(hashMs) / median(ckptMs)
	verifyPct := 100 * median(verifyMs) / median(restMs)
	goal := func(pct float64) string {
		if pct <= 5 {
			return "met"
		}
		return "MISSED"
	}
	fmt.Printf("\ndigests at %d MiB (%.1f MiB of images, %d runs, medians): hashing %.1f ms = %.1f %% of checkpoint %.1f ms (≤ 5 %%: %s); verifying %.1f ms = %.1f %% of restore %.1f ms (≤ 5 %%: %s); inspect --verify %.1f ms more than inspect; CRIU frozen %.1f ms\n",
		mib, median(sizes), len(hashMs), median(hashMs), hashPct, median(ckptMs), goal(hashPct), median(verifyMs), verifyPct, median(restMs), goal(verifyPct), median(inspectMs), median(frozenMs))
}

// loggedDigestTime is the last "<what> N bytes of images took D" runcr
// logged with --debug.
func loggedDigestTime(log, what string) (time.Duration, error) {
	re := regexp.MustCompile(what + ` [0-9]+ bytes of images took ([0-9.]+[a-zµ]+)`)
	all := re.FindAllStringSubmatch(log, -1)
	if len(all) == 0 {
		return 0, fmt.Errorf("runcr logged no %q of the images", what)
	}
	return time.ParseDuration(all[len(all)-1][1])
}
