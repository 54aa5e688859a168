package criuhost

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// CRIU stops each task at the end of its parasite code with an x86 debug
// register breakpoint. Some hypervisors never deliver those breakpoints,
// and then CRIU waits forever with the container frozen (seen here:
// Firecracker guests; gdb's hbreak never fires either). CRIU can stop the
// tasks by syscall tracing instead, selected by its FI_NO_BREAKPOINTS fault
// knob (CRIU_FAULT=130), which costs a little time per task.
const NoBreakpoints = "130"

// breakpointsCache keeps the probe's answer for the running kernel: it
// costs a ptraced fork and exec (~25 ms) and can't change until reboot.
const breakpointsCache = "/run/runcr/hw-breakpoints"

// CachedBreakpointsWork is hardwareBreakpointsWork, remembered per boot.
func CachedBreakpointsWork(binary string) (bool, error) {
	works, _, err := CachedProbe(breakpointsCache, bootID(), func() (bool, string, error) {
		works, err := hardwareBreakpointsWork(binary)
		return works, "", err
	})
	return works, err
}

// offsetof(struct user, u_debugreg) on x86_64.
const userDebugRegOffset = 848

// hardwareBreakpointsWork reports whether an x86 instruction breakpoint
// set through ptrace fires in a traced child. It execs binary (criu)
// with --version under PTRACE_TRACEME, arms DR0 at the child's first
// instruction and resumes it: a working breakpoint traps at once; a broken
// one lets the child run to its exit.
func hardwareBreakpointsWork(binary string) (bool, error) {
	// ptrace requests must come from the thread that is the tracer.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return false, err
	}
	defer devnull.Close()
	pid, err := syscall.ForkExec(binary, []string{binary, "--version"}, &syscall.ProcAttr{
		Files: []uintptr{devnull.Fd(), devnull.Fd(), devnull.Fd()},
		Sys:   &syscall.SysProcAttr{Ptrace: true, Pdeathsig: syscall.SIGKILL},
	})
	if err != nil {
		return false, fmt.Errorf("starting breakpoint probe: %w", err)
	}
	defer func() {
		_ = unix.Kill(pid, unix.SIGKILL)
		var ws unix.WaitStatus
		_, _ = unix.Wait4(pid, &ws, 0, nil)
	}()
	var ws unix.WaitStatus
	if _, err := unix.Wait4(pid, &ws, 0, nil); err != nil {
		return false, err
	}
	if !ws.Stopped() || ws.StopSignal() != unix.SIGTRAP {
		return false, fmt.Errorf("breakpoint probe: unexpected first stop %v", ws)
	}
	var regs unix.PtraceRegs
	if err := unix.PtraceGetRegs(pid, &regs); err != nil {
		return false, err
	}
	if err := pokeDebugReg(pid, 0, regs.Rip); err != nil {
		return false, err
	}
	if err := pokeDebugReg(pid, 7, 1); err != nil { // L0: local enable, execute, 1 byte
		return false, err
	}
	if err := unix.PtraceCont(pid, 0); err != nil {
		return false, err
	}
	// The child is ours alone, so polling with WNOHANG is safe; a probe
	// that neither traps nor exits in time counts as no breakpoints.
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		wpid, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil)
		if err != nil {
			return false, err
		}
		if wpid == pid {
			return ws.Stopped() && ws.StopSignal() == unix.SIGTRAP, nil
		}
		time.Sleep(time.Millisecond)
	}
	return false, errors.New("breakpoint probe: child neither trapped nor exited")
}

func pokeDebugReg(pid, n int, value uint64) error {
	buf := make([]byte, 8)
	binary.LittleEndian.PutUint64(buf, value)
	_, err := unix.PtracePokeUser(pid, uintptr(userDebugRegOffset+8*n), buf)
	if err != nil {
		return fmt.Errorf("setting debug register %d: %w", n, err)
	}
	return nil
}
