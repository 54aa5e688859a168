package criuhost

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// Deadlines on CRIU. Every wait on CRIU ends when the caller's context
// does: the commands runcr runs itself (criu check, --version) are killed
// with their process group; the `criu swrk` that libcontainer and go-criu
// start, which offer no way to cancel, is first told its client is gone
// (StopCriuConn: a working CRIU then undoes what it did and exits, a
// dump resuming the container), and killed with everything it started if
// it is still there KillGrace later, so that a CRIU that never answers
// can't hold runcr, its links or the container.

// ErrCriuTimeout: a call was stopped because its context ended before
// CRIU answered (libcheckpoint.ErrCriuTimeout).
var ErrCriuTimeout = errors.New("stopped waiting for CRIU")

// ProbeTimeout bounds each short CRIU probe (version, feature check,
// kernel feature cache): they take milliseconds.
const ProbeTimeout = 30 * time.Second

// KillGrace is how long a CRIU told to stop may take before it is
// killed: a working one undoes a dump or restore in well under a second.
const KillGrace = 5 * time.Second

// Command is a short CRIU command bounded by ctx and by timeout
// (ended by the returned cancel): CRIU runs in a process group of its
// own, killed whole when the time is up, so that a child it left holding
// the output pipe can't keep the caller waiting (or stay behind).
func Command(ctx context.Context, timeout time.Duration, criu string, args ...string) (*exec.Cmd, context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	cmd := exec.CommandContext(ctx, criu, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	return cmd, ctx, cancel
}

// RunProbe runs a CRIU probe (Command, ProbeTimeout) and
// returns its combined output. A probe that ran out of time returns an
// error wrapping ErrCriuTimeout.
func RunProbe(ctx context.Context, criu string, args ...string) ([]byte, error) {
	cmd, ctx, cancel := Command(ctx, ProbeTimeout, criu, args...)
	defer cancel()
	out, err := cmd.CombinedOutput()
	if err != nil && ctx.Err() != nil {
		return out, TimeoutError(context.Cause(ctx), "`"+criu+" "+strings.Join(args, " ")+"`")
	}
	return out, err
}

// TimeoutError names what was waited for and why it stopped.
func TimeoutError(cause error, what string) error {
	return &criuTimeout{what: what, cause: cause}
}

type criuTimeout struct {
	what  string
	cause error
}

func (e *criuTimeout) Error() string {
	return ErrCriuTimeout.Error() + " (" + e.what + "): " + e.cause.Error()
}

func (e *criuTimeout) Unwrap() []error { return []error{ErrCriuTimeout, e.cause} }

// WatchCriu bounds a call that makes libcontainer or go-criu start CRIU.
// When ctx ends before the returned stop is called, abort is called (again
// every 10 ms: CRIU may not have been started yet), and grace later every
// process running the criu binary criuPath that runcr started is killed
// with its descendants, unless abort last said CRIU is to be left to
// finish. stop returns once the watch is over.
func WatchCriu(ctx context.Context, criuPath string, grace time.Duration, abort func() bool) (stop func()) {
	if ctx.Done() == nil {
		return func() {}
	}
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		select {
		case <-quit:
			return
		case <-ctx.Done():
		}
		logrus.Warnf("Stopping CRIU: %v", context.Cause(ctx))
		Stopping := abort()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		kill := time.NewTimer(grace)
		defer kill.Stop()
		for {
			select {
			case <-quit:
				return
			case <-tick.C:
				Stopping = abort()
			case <-kill.C:
				if Stopping {
					killCriuProcesses(criuPath)
				}
				kill.Reset(time.Second)
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() { close(quit) })
		<-done
	}
}

// killCriuProcesses kills, with SIGKILL, the processes runcr started that
// run criuPath (a binary, or a script whose interpreter got its path), and
// all their descendants. They are found through /proc: libcontainer keeps
// its exec.Cmd to itself.
func killCriuProcesses(criuPath string) {
	children := processChildren()
	for _, criu := range criuProcesses(criuPath, children) {
		for _, pid := range descendants(children, criu) {
			logrus.Warnf("killing CRIU process %d: it did not stop when told to", pid)
			_ = unix.Kill(pid, unix.SIGKILL)
		}
	}
}

// criuProcesses lists runcr's children that run criuPath.
func criuProcesses(criuPath string, children map[int][]int) []int {
	want, err := os.Stat(criuPath)
	if err != nil {
		logrus.Debugf("can't find CRIU's processes: %v", err)
		return nil
	}
	var pids []int
	for _, pid := range children[os.Getpid()] {
		if runsFile(pid, want) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// Stopping turns an abort into one for WatchCriu that always stops CRIU.
func Stopping(abort func()) func() bool {
	return func() bool { abort(); return true }
}

// StopCriuConn returns an abort that makes a running `criu swrk` of
// criuPath stop: it shuts down runcr's end of each unix seqpacket
// connection whose other end such a CRIU holds (libcontainer's and
// go-criu's socketpair). CRIU then sees its client gone, as if runcr had
// died, at its next message, and libcontainer's wait for CRIU's answer
// returns. Shutdown rather than close: the descriptor stays libcontainer's.
// Sockets of the host program are never touched: their peers are not
// CRIU's.
func StopCriuConn(criuPath string) func() {
	return func() {
		if criuPath == "" {
			return
		}
		pids := criuProcesses(criuPath, processChildren())
		if len(pids) == 0 {
			return // not started yet (or gone): the next tick sees it
		}
		held := map[uint64]bool{}
		for _, pid := range pids {
			for ino := range socketInodes(pid) {
				held[ino] = true
			}
		}
		if len(held) == 0 {
			return
		}
		for ino, fd := range socketInodes(os.Getpid()) {
			if t, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE); err != nil || t != unix.SOCK_SEQPACKET {
				continue
			}
			peer, err := unixPeer(uint32(ino))
			if err != nil {
				logrus.Warnf("can't tell whether fd %d is runcr's connection to CRIU: %v", fd, err)
				continue
			}
			if !held[uint64(peer)] {
				continue
			}
			if err := unix.Shutdown(fd, unix.SHUT_RDWR); err != nil && !errors.Is(err, unix.ENOTCONN) {
				logrus.Debugf("shutting down fd %d: %v", fd, err)
			}
		}
	}
}

// socketInodes maps the inode of each socket process pid holds to one of
// its descriptors.
func socketInodes(pid int) map[uint64]int {
	dir := filepath.Join("/proc", strconv.Itoa(pid), "fd")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	out := map[uint64]int{}
	for _, e := range entries {
		link, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil || !strings.HasPrefix(link, "socket:[") {
			continue
		}
		ino, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]"), 10, 64)
		fd, ferr := strconv.Atoi(e.Name())
		if err == nil && ferr == nil {
			out[ino] = fd
		}
	}
	return out
}

// processChildren maps each process id to its children's, from /proc.
func processChildren() map[int][]int {
	entries, _ := os.ReadDir("/proc")
	children := map[int][]int{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid := parentPid(pid); ppid > 0 {
			children[ppid] = append(children[ppid], pid)
		}
	}
	return children
}

// parentPid reads the fourth field of /proc/PID/stat (after the command
// name, which may hold spaces and parentheses).
func parentPid(pid int) int {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0
	}
	fields := strings.Fields(string(data[i+1:]))
	if len(fields) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(fields[1])
	return ppid
}

// descendants lists pid and everything below it, parents first.
func descendants(children map[int][]int, pid int) []int {
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

// runsFile tells whether process pid runs want: its executable, or the
// script its first or second argument names.
func runsFile(pid int, want os.FileInfo) bool {
	dir := filepath.Join("/proc", strconv.Itoa(pid))
	if fi, err := os.Stat(filepath.Join(dir, "exe")); err == nil && os.SameFile(fi, want) {
		return true
	}
	cmdline, err := os.ReadFile(filepath.Join(dir, "cmdline"))
	if err != nil {
		return false
	}
	args := strings.Split(string(cmdline), "\x00")
	for _, a := range args[:min(2, len(args))] {
		if !filepath.IsAbs(a) {
			continue
		}
		if fi, err := os.Stat(a); err == nil && os.SameFile(fi, want) {
			return true
		}
	}
	return false
}
