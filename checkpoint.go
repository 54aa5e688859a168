package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/runcr/runcr/libcheckpoint"
)

func checkpointCommand() *cli.Command {
	return &cli.Command{
		Name:  "checkpoint",
		Usage: "checkpoint a running container",
		ArgsUsage: `<container-id>

Where "<container-id>" is the name for the instance of the container to be
checkpointed.`,
		Description: "The checkpoint command saves the state of the container instance with CRIU.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "image-path", Usage: "path for saving criu image files (default: ./checkpoint)"},
			&cli.StringFlag{Name: "work-path", Usage: "path for saving work files and logs"},
			&cli.StringFlag{Name: "parent-path", Usage: "path for previous criu image files in pre-dump, relative to --image-path"},
			&cli.BoolFlag{Name: "leave-running", Usage: "leave the process running after checkpointing"},
			&cli.BoolFlag{Name: "tcp-established", Usage: "allow open tcp connections"},
			&cli.BoolFlag{Name: "tcp-skip-in-flight", Usage: "skip in-flight tcp connections"},
			&cli.BoolFlag{Name: "link-remap", Usage: "allow one to link unlinked files back when possible"},
			&cli.BoolFlag{Name: "ext-unix-sk", Usage: "allow external unix sockets"},
			&cli.BoolFlag{Name: "shell-job", Usage: "allow shell jobs"},
			&cli.BoolFlag{Name: "lazy-pages", Usage: "use userfaultfd to lazily restore memory pages"},
			&cli.IntFlag{Name: "status-fd", Value: -1, Usage: "criu writes \\0 to this FD once lazy-pages is ready"},
			&cli.StringFlag{Name: "page-server", Usage: "ADDRESS:PORT of the page server"},
			&cli.BoolFlag{Name: "file-locks", Usage: "handle file locks, for safety"},
			&cli.BoolFlag{Name: "pre-dump", Usage: "dump container's memory information only, leave the container running after this"},
			&cli.StringFlag{Name: "manage-cgroups-mode", Usage: "cgroups mode: soft|full|strict|ignore (default: soft)"},
			&cli.StringSliceFlag{Name: "empty-ns", Usage: "create a namespace, but don't restore its properties"},
			&cli.BoolFlag{Name: "auto-dedup", Usage: "enable auto deduplication of memory images"},
			&cli.BoolFlag{Name: "print-stats", Usage: "print CRIU's dump statistics after a successful checkpoint"},
			&cli.StringFlag{Name: "format", Value: "text", Usage: "format of the --print-stats output: text or json"},
			&cli.StringFlag{Name: "export", Usage: "also write the checkpoint as one archive `FILE` (mode 0600; - for standard output; a device or FIFO is written through); without --image-path the images go to a temporary directory"},
			&cli.StringFlag{Name: "compress", Usage: "compression of the --export archive: zstd|gzip|none (default: zstd)"},
		},
		Action: func(c *cli.Context) error {
			id, err := containerID(c)
			if err != nil {
				return err
			}
			stats, err := statsOutputFrom(c)
			if err != nil {
				return err
			}
			opts := checkpointOptions(c)
			opts.Progress = progressOutput()
			statsOut := c.App.Writer
			if opts.Export == "-" {
				// Standard output carries the archive.
				opts.Export, opts.ExportTo = "standard output", c.App.Writer
				statsOut = c.App.ErrWriter
			}
			var res *libcheckpoint.CheckpointResult
			rt := runtimeFrom(c)
			err = withCriu(c, rt, id, func(ctx context.Context) (err error) {
				res, err = rt.Checkpoint(ctx, id, opts)
				return err
			})
			if err != nil {
				return err
			}
			return stats.dump(statsOut, res)
		},
	}
}

// checkpointOptions is the one conversion from checkpoint flags to the
// library's options.
func checkpointOptions(c *cli.Context) libcheckpoint.CheckpointOptions {
	o := libcheckpoint.NewCheckpointOptions()
	o.CommonOptions = commonOptions(c)
	o.ParentPath = c.String("parent-path")
	o.LeaveRunning = c.Bool("leave-running")
	o.TCPSkipInFlight = c.Bool("tcp-skip-in-flight")
	o.LinkRemap = c.Bool("link-remap")
	o.StatusFD = c.Int("status-fd")
	o.PageServer = c.String("page-server")
	o.PreDump = c.Bool("pre-dump")
	o.Export = c.String("export")
	o.Compress = libcheckpoint.Compression(c.String("compress"))
	return o
}

// progressOutput is where export and import report progress: standard
// error when it is a terminal, else nowhere.
func progressOutput() io.Writer {
	if _, err := unix.IoctlGetTermios(int(os.Stderr.Fd()), unix.TCGETS); err != nil {
		return nil
	}
	return os.Stderr
}

// commonOptions reads the flags checkpoint and restore share.
func commonOptions(c *cli.Context) libcheckpoint.CommonOptions {
	return libcheckpoint.CommonOptions{
		ImagePath:         c.String("image-path"),
		WorkPath:          c.String("work-path"),
		TCPEstablished:    c.Bool("tcp-established"),
		ExtUnixSockets:    c.Bool("ext-unix-sk"),
		ShellJob:          c.Bool("shell-job"),
		FileLocks:         c.Bool("file-locks"),
		ManageCgroupsMode: libcheckpoint.CgroupMode(c.String("manage-cgroups-mode")),
		EmptyNamespaces:   c.StringSlice("empty-ns"),
		AutoDedup:         c.Bool("auto-dedup"),
		LazyPages:         c.Bool("lazy-pages"),
	}
}

// containerID returns the single <container-id> argument.
func containerID(c *cli.Context) (string, error) {
	if c.NArg() != 1 {
		_ = cli.ShowSubcommandHelp(c)
		return "", fmt.Errorf("%q requires exactly 1 argument, the container id (got %d)", c.Command.Name, c.NArg())
	}
	return c.Args().First(), nil
}
