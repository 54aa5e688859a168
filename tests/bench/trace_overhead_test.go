//go:build linux

package bench

import (
	"os"
	"testing"
	"time"
)

// BenchmarkTraceOverhead measures what the peak-RSS tracing adds to one
// command: `runc --version` (a Go binary like the runtimes, so it starts
// its threads and takes its signals) run traced and untraced, alternately.
// Run: go test -run '^$' -bench TraceOverhead -benchtime 200x ./tests/bench
// (as root, with BENCH_RUNC or runc at /usr/local/sbin/runc).
func BenchmarkTraceOverhead(b *testing.B) {
	runc := os.Getenv("BENCH_RUNC")
	if runc == "" {
		runc = "/usr/local/sbin/runc"
	}
	if _, err := os.Stat(runc); err != nil {
		b.Skip(err)
	}
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer null.Close()
	stdio := [3]*os.File{null, null, null}
	var plain, traced []float64
	stops := 0
	for b.Loop() {
		for _, trace := range []bool{false, true} {
			m, err := run([]string{runc, "--version"}, os.Environ(), stdio, 10*time.Second, trace)
			if err != nil {
				b.Fatal(err)
			}
			if trace {
				traced = append(traced, ms(m.Wall))
				stops += m.TraceStops
			} else {
				plain = append(plain, ms(m.Wall))
			}
		}
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(median(plain), "untraced-ms")
	b.ReportMetric(median(traced), "traced-ms")
	b.ReportMetric(float64(stops)/float64(len(traced)), "stops/cmd")
}
