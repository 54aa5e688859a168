//go:build linux

package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// BenchmarkDigest measures what the image digests cost (the issue "Hostile
// input", item 5: at most 5 % of a checkpoint and of a restore at 1 GiB).
// One runcr container is checkpointed and restored over and over, as in
// BenchmarkCheckpointRestore; after each cycle its images, still on the
// bench's tmpfs, are read by `runcr inspect` and by `runcr inspect
// --verify`, which reads and hashes every image as a checkpoint hashes
// them and checks them as a restore does: the difference is the cost of
// the digests (this package can't link libcheckpoint: go-criu's two stats
// packages register the same protobuf names), set against that cycle's
// checkpoint and restore, which include it.
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
	l.setup(b)
	// Hashing at checkpoint and verifying at restore read and hash the
	// same files the same way; both are measured as inspect --verify's
	// extra time.
	var hashMs, verifyMs, ckptMs, restMs, sizes []float64
	for range cfg.warmup {
		l.cycle(b, false)
	}
	for b.Loop() {
		n := len(l.samples.CheckpointMs)
		l.cycle(b, true)
		ckptMs = append(ckptMs, l.samples.CheckpointMs[n])
		restMs = append(restMs, l.samples.RestoreMs[n])
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
		timed := func(args ...string) float64 {
			start := time.Now()
			if out, err := exec.Command(l.bin, append([]string{"inspect"}, args...)...).CombinedOutput(); err != nil {
				b.Fatalf("runcr inspect %v: %v\n%s", args, err, out)
			}
			return ms(time.Since(start))
		}
		plain := timed(l.images)
		verify := timed("--verify", l.images)
		hashMs = append(hashMs, verify-plain)
		verifyMs = append(verifyMs, verify-plain)
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(median(hashMs), "hash-ms")
	b.ReportMetric(median(verifyMs), "verify-ms")
	b.ReportMetric(median(ckptMs), "ckpt-ms")
	b.ReportMetric(median(restMs), "restore-ms")
	hashPct := 100 * median(hashMs) / median(ckptMs)
	verifyPct := 100 * median(verifyMs) / median(restMs)
	goal := func(pct float64) string {
		if pct <= 5 {
			return "met"
		}
		return "MISSED"
	}
	fmt.Printf("\ndigests at %d MiB (%.1f MiB of images, %d runs, medians): hashing %.1f ms = %.1f %% of checkpoint %.1f ms (≤ 5 %%: %s); verifying %.1f ms = %.1f %% of restore %.1f ms (≤ 5 %%: %s)\n",
		mib, median(sizes), len(hashMs), median(hashMs), hashPct, median(ckptMs), goal(hashPct), median(verifyMs), verifyPct, median(restMs), goal(verifyPct))
}
