package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/runcr/runcr/libcheckpoint"
)

func diffCommand() *cli.Command {
	return &cli.Command{
		Name:  "diff",
		Usage: "compare two checkpoints of a container: processes, memory pages, files, sockets, rootfs changes",
		ArgsUsage: `<a> <b>

Where "<a>" and "<b>" are checkpoints runcr inspect reads (image
directories or archives), "<a>" the earlier. Memory is compared page by
page, by contents.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "format", Value: "text", Usage: "output format: text or json"},
		},
		Action: func(c *cli.Context) error {
			asJSON, err := formatIsJSON(c)
			if err != nil {
				return err
			}
			if c.NArg() != 2 {
				_ = cli.ShowSubcommandHelp(c)
				return fmt.Errorf("\"diff\" requires exactly 2 arguments, the checkpoints to compare (got %d)", c.NArg())
			}
			d, err := libcheckpoint.DiffCheckpoints(c.Args().Get(0), c.Args().Get(1))
			if err != nil {
				return err
			}
			// The environment may hold secrets: inspect --env shows it.
			for _, ps := range [][]libcheckpoint.InspectedProcess{d.ProcessesAdded, d.ProcessesRemoved} {
				for i := range ps {
					ps[i].Env = nil
				}
			}
			if asJSON {
				return writeJSON(c.App.Writer, d)
			}
			printDiff(c.App.Writer, d)
			return nil
		},
	}
}

func printDiff(out io.Writer, d *libcheckpoint.CheckpointDiff) {
	fmt.Fprintf(out, "--- %s", d.A)
	if d.ContainerA != "" {
		fmt.Fprintf(out, " (container %s)", d.ContainerA)
	}
	fmt.Fprintf(out, "\n+++ %s", d.B)
	if d.ContainerB != "" {
		fmt.Fprintf(out, " (container %s)", d.ContainerB)
	}
	fmt.Fprintln(out)

	fmt.Fprintf(out, "\nProcesses: %d added, %d removed, %d changed\n", len(d.ProcessesAdded), len(d.ProcessesRemoved), len(d.ProcessesChanged))
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	for _, p := range d.ProcessesAdded {
		fmt.Fprintf(w, "  +\tpid %d\t%s\t%s\n", p.PID, p.Comm, commandLine(p))
	}
	for _, p := range d.ProcessesRemoved {
		fmt.Fprintf(w, "  -\tpid %d\t%s\t%s\n", p.PID, p.Comm, commandLine(p))
	}
	for _, p := range d.ProcessesChanged {
		changes := make([]string, len(p.Changes))
		for i, c := range p.Changes {
			changes[i] = oneLine(c, 160)
		}
		fmt.Fprintf(w, "  ~\tpid %d\t%s\t%s\n", p.PID, p.Comm, strings.Join(changes, "; "))
	}
	w.Flush()

	t := d.MemoryTotal
	fmt.Fprintf(out, "\nMemory pages: %d changed, %d added, %d removed, %d unchanged\n", t.Changed, t.Added, t.Removed, t.Unchanged)
	w = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	if len(d.Memory) > 0 {
		fmt.Fprintln(w, "  PID\tCHANGED\tADDED\tREMOVED\tUNCHANGED\tCHANGED AT")
	}
	for _, m := range d.Memory {
		ranges := make([]string, 0, len(m.ChangedRanges))
		for _, r := range m.ChangedRanges {
			ranges = append(ranges, fmt.Sprintf("%x-%x", r[0], r[1]))
		}
		at := strings.Join(ranges, " ")
		if len(at) > 80 {
			at = at[:77] + "..."
		}
		fmt.Fprintf(w, "  %d\t%d\t%d\t%d\t%d\t%s\n", m.PID, m.Changed, m.Added, m.Removed, m.Unchanged, orNone(at))
	}
	w.Flush()
	if t.NotCompared > 0 {
		fmt.Fprintf(out, "  %d pages not compared: lazy, or in parent images that are not there\n", t.NotCompared)
	}

	fmt.Fprintf(out, "\nFiles: %d opened, %d closed\n", len(d.FilesOpened), len(d.FilesClosed))
	w = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	for _, f := range d.FilesOpened {
		fmt.Fprintf(w, "  +\tpid %d fd %d\t%s\n", f.PID, f.FD, f.Path)
	}
	for _, f := range d.FilesClosed {
		fmt.Fprintf(w, "  -\tpid %d fd %d\t%s\n", f.PID, f.FD, f.Path)
	}
	w.Flush()
	fmt.Fprintf(out, "\nSockets: %d opened, %d closed\n", len(d.SocketsOpened), len(d.SocketsClosed))
	w = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	sk := func(sign string, s libcheckpoint.OpenSocket) {
		addr := orNone(s.Local)
		if s.Peer != "" {
			addr += " -> " + s.Peer
		}
		fmt.Fprintf(w, "  %s\tpid %d fd %d\t%s\t%s\n", sign, s.PID, s.FD, strings.Join(nonEmpty(s.Kind, s.Family, s.Type, s.Protocol, s.State), " "), addr)
	}
	for _, s := range d.SocketsOpened {
		sk("+", s)
	}
	for _, s := range d.SocketsClosed {
		sk("-", s)
	}
	w.Flush()

	if r := d.Rootfs; r != nil {
		fmt.Fprintf(out, "\nRootfs: %d paths newly changed, %d no longer; %d newly deleted, %d no longer\n",
			len(r.ChangedAdded), len(r.ChangedRemoved), len(r.DeletedAdded), len(r.DeletedRemoved))
		for _, p := range r.ChangedAdded {
			fmt.Fprintf(out, "  + %s\n", p)
		}
		for _, p := range r.ChangedRemoved {
			fmt.Fprintf(out, "  - %s\n", p)
		}
		for _, p := range r.DeletedAdded {
			fmt.Fprintf(out, "  + deleted /%s\n", p)
		}
		for _, p := range r.DeletedRemoved {
			fmt.Fprintf(out, "  - deleted /%s\n", p)
		}
	} else {
		fmt.Fprintln(out, "\nRootfs: not recorded (only engine archives record the container's rootfs changes)")
	}
	if len(d.Warnings) > 0 {
		fmt.Fprintln(out, "\nWarnings:")
		for _, s := range d.Warnings {
			fmt.Fprintf(out, "  %s\n", s)
		}
	}
}

// oneLine shows s on one line: control characters escaped, cut in the
// middle to at most n runes.
func oneLine(s string, n int) string {
	var sb strings.Builder
	for _, r := range s {
		if r < ' ' || r == 0x7f {
			q := strconv.QuoteRune(r)
			sb.WriteString(q[1 : len(q)-1])
		} else {
			sb.WriteRune(r)
		}
	}
	r := []rune(sb.String())
	if len(r) <= n {
		return string(r)
	}
	return string(r[:n/2-2]) + " ... " + string(r[len(r)-(n/2-3):])
}
