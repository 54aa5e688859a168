// Command memhog is the benchmark workload: it holds N MiB of anonymous
// memory filled with a pattern derived from a seed and, on every SIGUSR1,
// re-checks every word of it and reports the result in a state file. A
// benchmark of a checkpoint and restore is only worth something if the
// restored process still holds exactly what it held before, so the bench
// asks for a check after every restore.
//
// Usage: memhog -mib N -seed S -state /path/in/container [-pdeathsig SIG]
//
// -pdeathsig asks the kernel for signal SIG (a number) when the parent
// thread dies (prctl PR_SET_PDEATHSIG), as some inits (tini -p) do; CRIU
// restores the setting.
//
// The state file is rewritten atomically (temporary file, rename) as one
// line of space-separated key=value pairs:
//
//	token=T seed=S mib=N check=K result=OK|BAD bad=B ms=D
//
// token is random, chosen at start-up: a container that was started afresh
// instead of restored has a different one. check counts the checks done
// (0 right after the fill), result says whether every word matched, bad is
// the number of words that didn't and ms how long the check took.
//
// Build it static (CGO_ENABLED=0) so it runs in a busybox rootfs.
package main

import (
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
	"unsafe"
)

func main() {
	mib := flag.Int("mib", 16, "MiB of memory to hold")
	seed := flag.Uint64("seed", 1, "seed of the memory pattern")
	state := flag.String("state", "/bench-state", "state file to write")
	pdeathsig := flag.Int("pdeathsig", 0, "signal to get when the parent thread dies (0: none)")
	flag.Parse()
	if *pdeathsig != 0 {
		if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_PDEATHSIG, uintptr(*pdeathsig), 0); errno != 0 {
			fatalf("prctl PR_SET_PDEATHSIG: %v", errno)
		}
	}
	if *mib <= 0 {
		fatalf("-mib must be positive")
	}

	// The notification is set up before the first state is written, so a
	// SIGUSR1 sent as soon as the state appears is never lost.
	sig := make(chan os.Signal, 16)
	signal.Notify(sig, syscall.SIGUSR1)

	var tb [8]byte
	if _, err := rand.Read(tb[:]); err != nil {
		fatalf("token: %v", err)
	}
	token := hex.EncodeToString(tb[:])

	// mmap rather than make(): the Go heap and GC stay out of it, and the
	// mapping is exactly N MiB of private anonymous memory, every page
	// written, so every page is in the image.
	size := *mib << 20
	mem, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANONYMOUS)
	if err != nil {
		fatalf("mmap %d MiB: %v", *mib, err)
	}
	words := unsafe.Slice((*uint64)(unsafe.Pointer(&mem[0])), size/8)
	for i := range words {
		words[i] = pattern(*seed, uint64(i))
	}

	check := 0
	write(*state, fmt.Sprintf("token=%s seed=%d mib=%d check=%d result=OK bad=0 ms=0", token, *seed, *mib, check))
	for range sig {
		start := time.Now()
		bad := 0
		for i, w := range words {
			if w != pattern(*seed, uint64(i)) {
				bad++
			}
		}
		check++
		result := "OK"
		if bad != 0 {
			result = "BAD"
		}
		write(*state, fmt.Sprintf("token=%s seed=%d mib=%d check=%d result=%s bad=%d ms=%d",
			token, *seed, *mib, check, result, bad, time.Since(start).Milliseconds()))
	}
}

// pattern is splitmix64 of seed and word index: cheap, and no two words of
// a page, nor two pages, are alike, so nothing can be deduplicated or
// mistaken for a zero page.
func pattern(seed, i uint64) uint64 {
	z := seed + (i+1)*0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func write(path, line string) {
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, []byte(line+"\n"), 0o644); err != nil {
		fatalf("%v", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		fatalf("%v", err)
	}
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "memhog: "+format+"\n", args...)
	os.Exit(1)
}
