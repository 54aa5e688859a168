package main

import (
	"context"
	"errors"
	"io"
	"os"
	"os/signal"
	"sync"

	"github.com/opencontainers/runc/libcontainer/utils"
	"github.com/sirupsen/logrus"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/runcr/runcr/libcheckpoint"
)

func restoreCommand() *cli.Command {
	return &cli.Command{
		Name:  "restore",
		Usage: "restore a container from a previous checkpoint",
		ArgsUsage: `<container-id>

Where "<container-id>" is the name for the instance of the container to be
restored.`,
		Description: `Restores the saved state of the container instance that was previously saved
using the runcr (or runc) checkpoint command.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "console-socket", Usage: "path to an AF_UNIX socket which will receive a file descriptor referencing the master end of the console's pseudoterminal"},
			&cli.StringFlag{Name: "image-path", Usage: "path to criu image files for restoring (default: ./checkpoint)"},
			&cli.StringFlag{Name: "work-path", Usage: "path for saving work files and logs"},
			&cli.BoolFlag{Name: "tcp-established", Usage: "allow open tcp connections"},
			&cli.BoolFlag{Name: "ext-unix-sk", Usage: "allow external unix sockets"},
			&cli.BoolFlag{Name: "shell-job", Usage: "allow shell jobs"},
			&cli.BoolFlag{Name: "file-locks", Usage: "handle file locks, for safety"},
			&cli.StringFlag{Name: "manage-cgroups-mode", Usage: "cgroups mode: soft|full|strict|ignore (default: soft)"},
			&cli.StringFlag{Name: "bundle", Aliases: []string{"b"}, Usage: "path to the root of the bundle directory"},
			&cli.BoolFlag{Name: "detach", Aliases: []string{"d"}, Usage: "detach from the container's process"},
			&cli.StringFlag{Name: "pid-file", Usage: "specify the file to write the process id to"},
			&cli.BoolFlag{Name: "no-subreaper", Usage: "disable the use of the subreaper used to reap reparented processes"},
			&cli.BoolFlag{Name: "no-pivot", Usage: "do not use pivot root to jail process inside rootfs. This should be used whenever the rootfs is on top of a ramdisk"},
			&cli.StringSliceFlag{Name: "empty-ns", Usage: "create a namespace, but don't restore its properties"},
			&cli.BoolFlag{Name: "auto-dedup", Usage: "enable auto deduplication of memory images"},
			&cli.BoolFlag{Name: "lazy-pages", Usage: "use userfaultfd to lazily restore memory pages"},
			&cli.StringFlag{Name: "lsm-profile", Usage: "Specify an LSM profile to be used during restore in the form of TYPE:NAME."},
			&cli.StringFlag{Name: "lsm-mount-context", Usage: "Specify an LSM mount context to be used during restore."},
			&cli.BoolFlag{Name: "tcp-close", Usage: "restore established TCP connections closed (Podman)"},
			&cli.BoolFlag{Name: "no-new-keyring", Usage: "do not create a new session keyring for the container (conmon)"},
			&cli.StringFlag{Name: "parent-path", Usage: "path of the parent (pre-dump) images, relative to --image-path (go-runc)"},
			&cli.IntFlag{Name: "preserve-fds", Usage: "number of file descriptors after stdio passed in; checked open (Podman)"},
			&cli.BoolFlag{Name: "print-stats", Usage: "print CRIU's restore statistics once the container is restored (in the foreground: to stderr, before waiting for it)"},
			&cli.StringFlag{Name: "format", Value: "text", Usage: "format of the --print-stats output: text or json"},
			&cli.StringFlag{Name: "import-limit", EnvVars: []string{"RUNCR_IMPORT_LIMIT"}, Usage: "the most an --import may unpack (`SIZE`: bytes or K, M, G, T); default 8G, and never more than the target's free space less a reserve"},
			&cli.StringFlag{Name: "import", Usage: "restore from the archive `FILE` that checkpoint --export wrote (- for standard input); unpacked into --image-path if given, else a temporary directory"},
		},
		Action: func(c *cli.Context) (err error) {
			id, err := containerID(c)
			if err != nil {
				return err
			}
			stats, err := statsOutputFrom(c)
			if err != nil {
				return err
			}
			opts := restoreOptions(c)
			opts.Progress = progressOutput()
			if opts.Import == "-" {
				opts.Import, opts.ImportFrom = "standard input", c.App.Reader
			}
			var restored *libcheckpoint.Restored
			var workPath string
			held := holdLog(c)
			defer func() { held.release(err, workPath) }()
			if stats.print || held != nil {
				opts.OnRestored = func(r libcheckpoint.Restored) {
					workPath = r.WorkPath
					if !stats.print {
						return
					}
					if opts.Detach {
						restored = &r // printed once Restore succeeded
						return
					}
					// runcr's stdout carries the container's from now on.
					_ = stats.restore(c.App.ErrWriter, r)
				}
			}
			if !opts.Detach {
				defer foreground(&opts)()
			}
			if _, err := rootlessFlag(c); err != nil {
				return err
			}
			var status int
			rt := runtimeFrom(c)
			err = withCriu(c, rt, "", func(ctx context.Context) (err error) {
				status, err = rt.Restore(ctx, id, opts)
				return err
			})
			if err != nil {
				return err
			}
			if restored != nil {
				if err := stats.restore(c.App.Writer, *restored); err != nil {
					return err
				}
			}
			if status != 0 {
				// The container's own exit status, passed on for supervisors.
				return cli.Exit("", status)
			}
			return nil
		},
	}
}

// restoreOptions is the one conversion from restore flags to the library's
// options.
func restoreOptions(c *cli.Context) libcheckpoint.RestoreOptions {
	return libcheckpoint.RestoreOptions{
		CommonOptions:   commonOptions(c),
		Bundle:          c.String("bundle"),
		Detach:          c.Bool("detach"),
		PidFile:         c.String("pid-file"),
		ConsoleSocket:   c.String("console-socket"),
		NoSubreaper:     c.Bool("no-subreaper"),
		NoPivot:         c.Bool("no-pivot"),
		LSMProfile:      c.String("lsm-profile"),
		LSMMountContext: c.String("lsm-mount-context"),
		TCPClose:        c.Bool("tcp-close"),
		NoNewKeyring:    c.Bool("no-new-keyring"),
		ParentPath:      c.String("parent-path"),
		PreserveFDs:     c.Int("preserve-fds"),
		Import:          c.String("import"),
		ImportLimit:     c.String("import-limit"),
	}
}

// foreground readies runcr to wait for a container restored in the
// foreground, as runc does: unless --no-subreaper it becomes a child
// subreaper (so that it reaps the container's orphans too), and from
// before CRIU runs it catches every signal, to forward it to the
// container once restored (opts.Wait). It returns the function that stops
// catching them.
func foreground(opts *libcheckpoint.RestoreOptions) (stop func()) {
	if !opts.NoSubreaper {
		if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
			logrus.Warnf("becoming a subreaper: %v", err)
		}
	}
	signals := make(chan os.Signal, 2048)
	signal.Notify(signals)
	opts.Wait = func(c *libcheckpoint.RestoredContainer) (int, error) {
		drained, err := copyStdio(c, opts.Stdio)
		if err != nil {
			return -1, err
		}
		status, err := forwardSignals(c, signals)
		drained()
		return status, err
	}
	return func() { signal.Stop(signals) }
}

// copyStdio copies between a container restored in the foreground and
// runcr's stdio, as runc's foreground runner does: its pipes, or its
// terminal with runcr's put in raw mode. drained waits for the output
// the container wrote before it exited and puts the terminal back.
func copyStdio(c *libcheckpoint.RestoredContainer, s libcheckpoint.Stdio) (drained func(), err error) {
	in, out, errOut := s.In, s.Out, s.Err
	if in == nil {
		in = os.Stdin
	}
	if out == nil {
		out = os.Stdout
	}
	if errOut == nil {
		errOut = os.Stderr
	}
	var copies sync.WaitGroup
	copyOut := func(w io.Writer, r io.Reader) {
		copies.Add(1)
		go func() {
			defer copies.Done()
			_, _ = io.Copy(w, r)
		}()
	}
	if c.Console != nil {
		if err := c.Terminal.SetRaw(); err != nil {
			return nil, err
		}
		c.ResizeTerminal()
		go func() { _, _ = io.Copy(c.Console, in) }()
		copyOut(out, c.Console)
		return func() { copies.Wait(); _ = c.Terminal.Reset() }, nil
	}
	go func() {
		_, _ = io.Copy(c.Stdin, in)
		_ = c.Stdin.Close()
	}()
	copyOut(out, c.Stdout)
	copyOut(errOut, c.Stderr)
	return copies.Wait, nil
}

// forwardSignals relays signals to the container's init until it exits
// and returns its exit status (128+signal when killed).
func forwardSignals(c *libcheckpoint.RestoredContainer, signals chan os.Signal) (int, error) {
	// An exit may have happened before we listened: reap once up front.
	if status, done := reap(c.Pid); done {
		return status, nil
	}
	for s := range signals {
		switch s {
		case unix.SIGWINCH:
			c.ResizeTerminal()
		case unix.SIGCHLD:
			if status, done := reap(c.Pid); done {
				return status, nil
			}
		case unix.SIGURG:
			// The Go runtime's preemption signal, not meant for the container.
		default:
			if err := c.Signal(s); err != nil && !errors.Is(err, os.ErrProcessDone) {
				logrus.Warnf("forwarding %v to the container: %v", s, err)
			}
		}
	}
	return -1, errors.New("signal channel closed")
}

// reap collects every exited child and reports init's exit status.
func reap(pid1 int) (int, bool) {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err != nil || pid <= 0 {
			return 0, false
		}
		if pid == pid1 {
			return utils.ExitStatus(ws), true
		}
	}
}
