package main

import (
	"context"
	"os"

	"github.com/sirupsen/logrus"
	"github.com/urfave/cli/v2"

	"github.com/runcr/runcr/libcheckpoint"
)

func receiveCommand() *cli.Command {
	return &cli.Command{
		Name:  "receive",
		Usage: "receive a container that runcr migrate sends (the stream on stdin, answers on stdout)",
		Description: `receive is the target end of runcr migrate, started by its transport: it
checks the host (CRIU, CPU, the id, the bundle), takes the bundle, restores the
container detached and keeps it once the source commits. The container's
standard output and error go through a pipe into --stdio-log; its standard
input is a pipe that stays open. Until the commit, any failure or the end of
the stream kills and deletes the restored container and removes a bundle
receive created.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "bundle", Aliases: []string{"b"}, Usage: "the bundle directory here: new, empty, or holding the same rootfs (default: the source's bundle path)"},
			&cli.StringFlag{Name: "id", Usage: "the container's id here (default: what migrate asks for)"},
			&cli.StringFlag{Name: "stdio-log", Usage: "`FILE` receiving the container's standard output and error (default: BUNDLE/ID.stdio.log)"},
			&cli.StringFlag{Name: "import-limit", EnvVars: []string{"RUNCR_IMPORT_LIMIT"}, Usage: "the most the checkpoint may unpack (`SIZE`), as for restore --import"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 0 {
				return cli.Exit("\"receive\" takes no arguments; it reads runcr migrate's stream on standard input", 1)
			}
			opts := libcheckpoint.ReceiveOptions{
				In:          os.Stdin,
				Out:         c.App.Writer,
				Bundle:      c.String("bundle"),
				ID:          c.String("id"),
				StdioLog:    c.String("stdio-log"),
				ImportLimit: c.String("import-limit"),
			}
			rt := runtimeFrom(c)
			err := withCriu(c, rt, "", func(ctx context.Context) error {
				ctx, stop := cancelOnSignals(ctx)
				defer stop()
				res, err := rt.Receive(ctx, opts)
				if err == nil {
					logrus.Infof("received container %q (pid %d), bundle %s, stdio in %s", res.ID, res.Pid, res.Bundle, res.StdioLog)
				}
				return err
			})
			if err != nil {
				return cli.Exit(err.Error(), 1)
			}
			return nil
		},
	}
}
