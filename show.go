package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/runcr/runcr/libcheckpoint"
)

func showCommand() *cli.Command {
	return &cli.Command{
		Name:  "show",
		Usage: "list checkpoints: container, engine, created, size, memory, complete or not",
		ArgsUsage: `[<path>...]

Where each "<path>" is a checkpoint (image directory or archive) or a
directory holding checkpoints; without one, the kubelet's checkpoint
directory (` + libcheckpoint.KubeletCheckpointDir + `).`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "format", Value: "text", Usage: "output format: text or json"},
		},
		Action: func(c *cli.Context) error {
			asJSON, err := formatIsJSON(c)
			if err != nil {
				return err
			}
			paths := c.Args().Slice()
			if len(paths) == 0 {
				if _, err := os.Stat(libcheckpoint.KubeletCheckpointDir); err != nil {
					return errors.New("\"show\": give the checkpoints or directories of checkpoints to list (there is no " + libcheckpoint.KubeletCheckpointDir + " to list by default)")
				}
				paths = []string{libcheckpoint.KubeletCheckpointDir}
			}
			list, err := libcheckpoint.ShowCheckpoints(paths)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(c.App.Writer, list)
			}
			printShow(c.App.Writer, list)
			return nil
		},
	}
}

func printShow(out io.Writer, list []libcheckpoint.CheckpointSummary) {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "CONTAINER\tENGINE\tCREATED\tSIZE\tMEMORY\tCOMPLETE\tPATH")
	for _, s := range list {
		created := "-"
		if !s.Created.IsZero() {
			created = s.Created.Local().Format(time.DateTime)
		}
		complete := "yes"
		if !s.Complete {
			complete = "no"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", orNone(s.Container), s.Engine, created, humanBytes(uint64(s.Size)), humanBytes(s.Memory), complete, s.Path)
	}
	w.Flush()
	for _, s := range list {
		if s.Error != "" {
			fmt.Fprintf(out, "%s: %s\n", s.Path, s.Error)
		}
	}
}
