package libcheckpoint

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"

	"github.com/containerd/console"
	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/utils"
	"golang.org/x/sys/unix"

	"github.com/runcr/runcr/libcheckpoint/internal/criuhost"
)

// restorer runs one restore: it wires the container's stdio, calls
// libcontainer, then waits in the foreground or returns when detached.
// Its shape follows runc's runner so that engines see the same behaviour.
type restorer struct {
	opts      RestoreOptions
	stdio     Stdio
	terminal  bool
	container *libcontainer.Container
	// criu starts CRIU with runcr's kernel feature cache.
	criu *criuSession
	// afterRestore runs once CRIU is done, whether it succeeded or not.
	afterRestore []func()
	onRestored   func(Restored)

	postStart []io.Closer      // our copies of what the container got; closed once it runs
	closers   []io.Closer      // our ends of its stdio; closed when it exits
	pipes     *libcontainer.IO // foreground: our ends of its stdio pipes
	consoleC  chan error       // foreground terminal: receipt of the pty master
	console   console.Console  // foreground terminal: its pty master
	host      console.Console  // foreground terminal: the caller's terminal
}

// checkTerminal applies runc's rules on terminals and console sockets.
func (r *restorer) checkTerminal() error {
	if r.opts.Detach && r.terminal && r.opts.ConsoleSocket == "" {
		return invalid("console-socket", "the container has a terminal (process.terminal in config.json) and --detach needs a socket to send its pty master to; give --console-socket PATH")
	}
	if (!r.opts.Detach || !r.terminal) && r.opts.ConsoleSocket != "" {
		return invalid("console-socket", "only used with --detach for a container with a terminal")
	}
	return nil
}

func (r *restorer) run(ctx context.Context, criuOpts *libcontainer.CriuOpts, log string) (status int, err error) {
	defer func() {
		if err != nil {
			r.destroy()
		}
	}()
	process := &libcontainer.Process{Init: true}
	if err := r.setupIO(process); err != nil {
		return -1, err
	}
	defer r.close()

	restore := func() error { return r.container.Restore(process, criuOpts) }
	stopWatch := func() {}
	if r.criu != nil {
		stopWatch = r.criu.watch(ctx, criuhost.Stopping(criuhost.StopCriuConn(r.criu.criuPath)))
	}
	if r.criu == nil {
		err = restore()
	} else {
		err = r.criu.run(restore, noUmask, len(r.container.Config().Hooks) == 0)
	}
	stopWatch()
	if err != nil && ctx.Err() != nil {
		// CRIU was stopped: its own error says only that its client left.
		err = criuhost.TimeoutError(context.Cause(ctx), "the restore")
	}
	var stats *RestoreStats
	var statsErr error
	if err == nil && r.onRestored != nil {
		// Read now: afterRestore may remove the images (restore --import).
		stats, statsErr = ReadRestoreStats(restoreWorkDir(criuOpts))
	}
	for _, f := range r.afterRestore {
		f()
	}
	if err != nil {
		return -1, criuFailure(fmt.Sprintf("restore of container %q", r.container.ID()), err, log)
	}
	copyStats(criuOpts, "stats-restore")
	if r.consoleC != nil {
		if err := <-r.consoleC; err != nil {
			terminate(process)
			return -1, err
		}
	}
	r.closePostStart()
	if r.opts.PidFile != "" {
		pid, err := process.Pid()
		if err == nil {
			err = writePidFile(r.opts.PidFile, pid)
		}
		if err != nil {
			terminate(process)
			return -1, err
		}
	}
	if r.onRestored != nil {
		pid, _ := process.Pid()
		r.onRestored(Restored{ID: r.container.ID(), Pid: pid, WorkPath: restoreWorkDir(criuOpts), Stats: stats, StatsErr: statsErr})
	}
	if r.opts.Detach {
		return 0, nil
	}
	status, err = r.wait(process)
	if err != nil {
		terminate(process)
		return -1, err
	}
	r.destroy()
	return status, nil
}

// setupIO gives the container its stdio as runc would: the caller's own
// files when detached (or in the foreground without RestoreOptions.Wait),
// fresh pipes in the foreground, or a pty whose master goes to the
// console socket (detached) or is received here (foreground). In the
// foreground the pipes and the pty master are the Wait hook's
// (RestoredContainer), which copies them: the library copies nothing.
func (r *restorer) setupIO(p *libcontainer.Process) error {
	switch {
	case r.terminal && r.opts.Detach:
		conn, err := net.Dial("unix", r.opts.ConsoleSocket)
		if err != nil {
			return invalid("console-socket", "%v", err)
		}
		socket, err := conn.(*net.UnixConn).File()
		if err != nil {
			conn.Close()
			return err
		}
		r.postStart = append(r.postStart, conn, socket)
		p.ConsoleSocket = socket
	case r.terminal:
		if r.opts.Wait == nil {
			return invalid("console-socket", "the container has a terminal, and a foreground restore needs RestoreOptions.Wait to copy it; or restore detached with a console socket")
		}
		host, err := hostConsole(r.stdio)
		if err != nil {
			return invalid("console-socket", "the container has a terminal but runcr's stdio is not one (%v); use --detach with --console-socket", err)
		}
		r.host = host
		parent, child, err := utils.NewSockPair("console")
		if err != nil {
			return err
		}
		p.ConsoleSocket = child
		r.postStart = append(r.postStart, parent, child)
		r.consoleC = make(chan error, 1)
		go func() { r.consoleC <- r.receiveConsole(parent) }()
	case r.opts.Detach || r.opts.Wait == nil:
		p.Stdin, p.Stdout, p.Stderr = r.stdio.In, r.stdio.Out, r.stdio.Err
	default:
		config := r.container.Config()
		uid, err := config.HostRootUID()
		if err != nil {
			return err
		}
		gid, err := config.HostRootGID()
		if err != nil {
			return err
		}
		pipes, err := p.InitializeIO(uid, gid)
		if err != nil {
			return err
		}
		r.closers = append(r.closers, pipes.Stdin, pipes.Stdout, pipes.Stderr)
		r.pipes = pipes
		for _, c := range []any{p.Stdin, p.Stdout, p.Stderr} {
			if c, ok := c.(io.Closer); ok {
				r.postStart = append(r.postStart, c)
			}
		}
	}
	return nil
}

func hostConsole(s Stdio) (console.Console, error) {
	for _, f := range []*os.File{s.Err, s.Out, s.In} {
		if c, err := console.ConsoleFromFile(f); err == nil {
			return c, nil
		}
	}
	f, err := os.Open("/dev/tty")
	if err != nil {
		return nil, err
	}
	return console.ConsoleFromFile(f)
}

// receiveConsole takes the pty master CRIU hands over; the Wait hook
// copies it (RestoredContainer.Console).
func (r *restorer) receiveConsole(socket *os.File) error {
	master, err := utils.RecvFile(socket)
	if err != nil {
		return err
	}
	cons, err := console.ConsoleFromFile(master)
	if err != nil {
		return err
	}
	if err := console.ClearONLCR(cons.Fd()); err != nil {
		return err
	}
	r.console = cons
	r.closers = append(r.closers, cons)
	return nil
}

func (r *restorer) closePostStart() {
	for _, c := range r.postStart {
		_ = c.Close()
	}
	r.postStart = nil
}

func (r *restorer) close() {
	r.closePostStart()
	for _, c := range r.closers {
		_ = c.Close()
	}
}

func (r *restorer) destroy() {
	warnIf(r.container.Destroy(), "removing container %q", r.container.ID())
}

func terminate(p *libcontainer.Process) {
	_ = p.Signal(unix.SIGKILL)
	_, _ = p.Wait()
}

// wait waits for the container's init to exit and returns its exit
// status (128+signal when killed), through RestoreOptions.Wait when set.
func (r *restorer) wait(p *libcontainer.Process) (int, error) {
	pid, err := p.Pid()
	if err != nil {
		return -1, err
	}
	if r.opts.Wait != nil {
		c := &RestoredContainer{Pid: pid, process: p, Console: r.console, Terminal: r.host}
		if r.pipes != nil {
			c.Stdin, c.Stdout, c.Stderr = r.pipes.Stdin, r.pipes.Stdout, r.pipes.Stderr
		}
		status, err := r.opts.Wait(c)
		_, _ = p.Wait() // releases the handle; the waiter reaped the process
		return status, err
	}
	ps, err := p.Wait()
	if ps == nil {
		return -1, err
	}
	ws, ok := ps.Sys().(unix.WaitStatus)
	if !ok {
		return -1, fmt.Errorf("waiting for the container's init: %v", ps)
	}
	return utils.ExitStatus(ws), nil
}

// RestoredContainer is a container restored in the foreground, handed
// to RestoreOptions.Wait, which copies its stdio: between Stdin, Stdout
// and Stderr and RestoreOptions.Stdio, or, for a container with a
// terminal, between Console and Terminal (put in raw mode while it
// copies, as runc does). Restore closes them when Wait returns.
type RestoredContainer struct {
	// Pid is the host pid of its init, a child of this process.
	Pid int
	// Stdin, Stdout and Stderr are this process's ends of the pipes that
	// are the container's stdio; nil for a container with a terminal.
	Stdin          io.WriteCloser
	Stdout, Stderr io.ReadCloser
	// Console is the master of the container's pty, and Terminal the
	// caller's terminal (from RestoreOptions.Stdio, else /dev/tty); nil
	// for a container without a terminal.
	Console, Terminal console.Console
	process           *libcontainer.Process
}

// Signal sends s to the container's init.
func (c *RestoredContainer) Signal(s os.Signal) error {
	return c.process.Signal(s)
}

// ResizeTerminal gives the container's terminal, if it has one copied to
// this process's, the size of this process's (on SIGWINCH).
func (c *RestoredContainer) ResizeTerminal() {
	if c.Console != nil && c.Terminal != nil {
		_ = c.Console.ResizeFrom(c.Terminal)
	}
}

// restoreWorkDir is where CRIU writes restore.log and stats-restore.
func restoreWorkDir(c *libcontainer.CriuOpts) string {
	if c.WorkDirectory != "" {
		return c.WorkDirectory
	}
	return c.ImagesDirectory // CRIU's default work directory
}
