//go:build linux

package bench

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// measured is what one run of a runtime command cost.
type measured struct {
	// Wall is from just before fork to the reaping of the runtime process.
	Wall time.Duration
	// PeakRSSKiB is the runtime process's own peak resident set (VmHWM),
	// read from /proc while it is stopped on its way out (see run).
	PeakRSSKiB int64
	// MaxRSSWithChildrenKiB is wait4's ru_maxrss: the largest of the
	// process's own peak and that of every descendant it waited for, CRIU
	// included. Reported for comparison only.
	MaxRSSWithChildrenKiB int64
	// UserCPU and SysCPU are the process's and its waited-for
	// descendants' CPU times.
	UserCPU, SysCPU time.Duration
	// RssAnonKiB and RssFileKiB split the resident set as the process
	// exits: its own memory, and the pages of files it maps (mostly its
	// binary).
	RssAnonKiB, RssFileKiB int64
	// TraceStops counts the ptrace stops the measurement caused.
	TraceStops int
}

// run executes argv with env and the given stdio, and measures it.
//
// Peak RSS: the process is traced (PTRACE_TRACEME at exec, then
// PTRACE_O_TRACEEXIT|PTRACE_O_TRACECLONE, so every thread it creates is
// traced too). Each thread stops at PTRACE_EVENT_EXIT, before the kernel
// drops its memory, and the bench reads VmHWM from /proc/PID/task/TID/status
// there; the largest value seen is the peak. This is the runtime process
// alone: its children (CRIU, runcr's breakpoint probe) are forks, which are
// not traced, and have address spaces of their own. wait4's ru_maxrss would
// not do, as it also covers every child the process waited for.
//
// Cost of the tracing: the process stops once at exec, twice per thread
// created and once per thread exit, and at every signal delivered to it;
// each stop is a round trip to this process of some microseconds. See
// BENCHMARKS.md for a measurement of it (BENCH_TRACE=0 turns it off).
func run(argv, env []string, stdio [3]*os.File, timeout time.Duration, trace bool) (measured, error) {
	type result struct {
		m   measured
		err error
	}
	done := make(chan result, 1)
	go func() {
		// The thread that forks is the tracer, and only it may make
		// ptrace requests: this goroutine owns it until the end. The
		// thread is not unlocked, so the Go runtime throws it away.
		runtime.LockOSThread()
		m, err := runLocked(argv, env, stdio, timeout, trace)
		done <- result{m, err}
	}()
	r := <-done
	return r.m, r.err
}

func runLocked(argv, env []string, stdio [3]*os.File, timeout time.Duration, trace bool) (measured, error) {
	var m measured
	files := []uintptr{stdio[0].Fd(), stdio[1].Fd(), stdio[2].Fd()}
	start := time.Now()
	pid, err := syscall.ForkExec(argv[0], argv, &syscall.ProcAttr{
		Env:   env,
		Files: files,
		Sys:   &syscall.SysProcAttr{Ptrace: trace, Setpgid: true},
	})
	if err != nil {
		return m, fmt.Errorf("starting %s: %w", argv[0], err)
	}
	// A runtime that hangs (a CRIU waiting forever) is killed with its
	// whole process group, CRIU included.
	timedOut := false
	timer := time.AfterFunc(timeout, func() {
		timedOut = true
		_ = unix.Kill(-pid, unix.SIGKILL)
		_ = unix.Kill(pid, unix.SIGKILL)
	})
	defer timer.Stop()

	if trace {
		var ws unix.WaitStatus
		if _, err := unix.Wait4(pid, &ws, unix.WALL, nil); err != nil {
			return m, err
		}
		if !ws.Stopped() || ws.StopSignal() != unix.SIGTRAP {
			return m, fmt.Errorf("%s: unexpected first stop %v", argv[0], ws)
		}
		if err := unix.PtraceSetOptions(pid, unix.PTRACE_O_TRACEEXIT|unix.PTRACE_O_TRACECLONE|unix.PTRACE_O_EXITKILL); err != nil {
			_ = unix.Kill(pid, unix.SIGKILL)
			return m, fmt.Errorf("PTRACE_SETOPTIONS: %w", err)
		}
		if err := unix.PtraceCont(pid, 0); err != nil {
			return m, err
		}
	}

	var rusage unix.Rusage
	for {
		var ws unix.WaitStatus
		var ru unix.Rusage
		// Only the process's own threads are waited for: -pid would be a
		// process group, and other children of the bench must not be
		// reaped here. Traced threads other than the leader are reported
		// to us under their own tid, hence __WALL and the -1... which is
		// safe because the bench runs one runtime command at a time and
		// starts nothing else meanwhile.
		wpid, err := unix.Wait4(-1, &ws, unix.WALL, &ru)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return m, fmt.Errorf("wait4: %w", err)
		}
		if wpid == pid && (ws.Exited() || ws.Signaled()) {
			m.Wall = time.Since(start)
			rusage = ru
			if ws.Signaled() {
				if timedOut {
					return m, fmt.Errorf("%s timed out after %s and was killed", argv[0], timeout)
				}
				return m, fmt.Errorf("%s killed by %v", argv[0], ws.Signal())
			}
			m.MaxRSSWithChildrenKiB = rusage.Maxrss
			m.UserCPU = time.Duration(rusage.Utime.Nano())
			m.SysCPU = time.Duration(rusage.Stime.Nano())
			if code := ws.ExitStatus(); code != 0 {
				return m, &exitError{code}
			}
			return m, nil
		}
		if !ws.Stopped() {
			continue // a traced non-leader thread is gone
		}
		m.TraceStops++
		sig := 0
		switch {
		case ws.StopSignal() == unix.SIGTRAP && ws.TrapCause() == unix.PTRACE_EVENT_EXIT:
			if st, err := memStatus(pid, wpid); err == nil && st["VmHWM"] >= m.PeakRSSKiB {
				m.PeakRSSKiB, m.RssAnonKiB, m.RssFileKiB = st["VmHWM"], st["RssAnon"], st["RssFile"]
			}
		case ws.StopSignal() == unix.SIGTRAP && ws.TrapCause() == unix.PTRACE_EVENT_CLONE:
		case ws.StopSignal() == unix.SIGSTOP:
			// A new thread's first stop (auto-attached by TRACECLONE).
		default:
			sig = int(ws.StopSignal()) // a signal for the process: pass it on
		}
		_ = unix.PtraceCont(wpid, sig)
	}
}

type exitError struct{ code int }

func (e *exitError) Error() string { return "exit status " + strconv.Itoa(e.code) }

// memStatus reads a thread's memory figures (VmHWM, RssAnon, RssFile...),
// in KiB. The thread group's leader may already be gone while another
// thread exits, so the thread's own entry is read; all threads share the
// one address space and so the values.
func memStatus(pid, tid int) (map[string]int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/status", pid, tid))
	if err != nil {
		return nil, err
	}
	st := map[string]int64{}
	for line := range bytes.Lines(data) {
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok || !bytes.HasPrefix(k, []byte("Vm")) && !bytes.HasPrefix(k, []byte("Rss")) {
			continue
		}
		if f := bytes.Fields(v); len(f) >= 1 {
			if n, err := strconv.ParseInt(string(f[0]), 10, 64); err == nil {
				st[string(k)] = n
			}
		}
	}
	if _, ok := st["VmHWM"]; !ok {
		return nil, errors.New("no VmHWM")
	}
	return st, nil
}
