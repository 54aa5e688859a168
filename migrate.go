package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/runcr/runcr/libcheckpoint"
)

func migrateCommand() *cli.Command {
	return &cli.Command{
		Name:  "migrate",
		Usage: "move a running container to another host, streamed, with rollback",
		ArgsUsage: `<container-id> <dest>

Where "<dest>" is ssh://[user@]host[:port] or exec:COMMAND (run by /bin/sh -c;
its standard input and output carry the stream to "runcr receive").`,
		Description: `The container stays frozen from the final rootfs sync until the target reports
it running; only then is it deleted here. Any failure before that, and SIGINT or
SIGTERM, thaws it where it stopped and the target removes what it made.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "new-id", Usage: "the container's id on the target (default: the same)"},
			&cli.StringFlag{Name: "remote-runcr", Value: "runcr", Usage: "ssh://: the runcr binary on the remote host"},
			&cli.StringFlag{Name: "remote-root", Usage: "ssh://: --root of runcr on the remote host"},
			&cli.StringFlag{Name: "remote-bundle", Usage: "ssh://: the bundle directory on the remote host (default: the same path as here)"},
			&cli.StringSliceFlag{Name: "ssh-option", Usage: "ssh://: an argument for ssh (repeat it: --ssh-option -i --ssh-option KEY)"},
			&cli.BoolFlag{Name: "tcp-established", Usage: "migrate established TCP connections"},
			&cli.BoolFlag{Name: "file-locks", Usage: "handle file locks"},
			&cli.BoolFlag{Name: "ext-unix-sk", Usage: "allow external unix sockets"},
			&cli.BoolFlag{Name: "shell-job", Usage: "allow shell jobs"},
			&cli.IntFlag{Name: "pre-dump-rounds", Usage: "pre-dump memory `N` times while the container runs, where the kernel tracks dirty memory (else said and skipped)"},
			&cli.BoolFlag{Name: "lazy-pages", Usage: "lazy migration: restore before all memory has arrived (refused where lazy pages don't work)"},
			&cli.StringFlag{Name: "compress", Usage: "compression of the stream: zstd|gzip|none (default: zstd)"},
			&cli.BoolFlag{Name: "print-stats", Usage: "print the migration's report as JSON: downtime, total time, bytes sent, time per step"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 2 {
				_ = cli.ShowSubcommandHelp(c)
				return cli.Exit(fmt.Sprintf("\"migrate\" requires exactly 2 arguments, the container id and the destination (got %d)", c.NArg()), 1)
			}
			id, dest := c.Args().Get(0), c.Args().Get(1)
			opts := libcheckpoint.MigrateOptions{
				Dest:           dest,
				NewID:          c.String("new-id"),
				RemoteRuncr:    c.String("remote-runcr"),
				RemoteRoot:     c.String("remote-root"),
				RemoteBundle:   c.String("remote-bundle"),
				SSHOptions:     c.StringSlice("ssh-option"),
				TCPEstablished: c.Bool("tcp-established"),
				FileLocks:      c.Bool("file-locks"),
				ExtUnixSockets: c.Bool("ext-unix-sk"),
				ShellJob:       c.Bool("shell-job"),
				PreDumpRounds:  c.Int("pre-dump-rounds"),
				LazyPages:      c.Bool("lazy-pages"),
				Compress:       libcheckpoint.Compression(c.String("compress")),
				Log:            c.App.ErrWriter,
			}
			var report *libcheckpoint.MigrateReport
			rt := runtimeFrom(c)
			err := withCriu(c, rt, id, func(ctx context.Context) (err error) {
				report, err = rt.Migrate(ctx, id, opts)
				return err
			})
			if err != nil {
				return cli.Exit(err.Error(), 1)
			}
			if c.Bool("print-stats") {
				enc := json.NewEncoder(c.App.Writer)
				enc.SetIndent("", "  ")
				return enc.Encode(report)
			}
			fmt.Fprintf(c.App.Writer, "migrated %s to %s as %s (pid %d there): downtime %.3fs, total %.3fs, %.1f MiB sent\n",
				id, dest, report.TargetID, report.TargetPid, report.DowntimeSeconds, report.TotalSeconds, float64(report.BytesSent)/(1<<20))
			return nil
		},
	}
}
