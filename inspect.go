package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/urfave/cli/v2"

	"github.com/runcr/runcr/libcheckpoint"
)

func inspectCommand() *cli.Command {
	return &cli.Command{
		Name:  "inspect",
		Usage: "describe a checkpoint: processes, memory, files, namespaces, manifest and dump statistics",
		ArgsUsage: `<path>

Where "<path>" is a checkpoint image directory, made by runcr or runc
checkpoint, an archive made by runcr checkpoint --export, or a container
engine's checkpoint archive (podman container checkpoint --export, the
CRI's of CRI-O and containerd: crictl checkpoint --export, kubelet).`,
		Description: "Decodes CRIU's images and runcr's manifest and says what the checkpoint holds and how it was made.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "format", Value: "text", Usage: "output format: text or json"},
			&cli.BoolFlag{Name: "verify", Usage: "check every image against the digests the manifest records; fail naming a damaged file, or if there are no digests"},
			&cli.BoolFlag{Name: "env", Usage: "show each process's environment (read from its saved memory)"},
			&cli.BoolFlag{Name: "all", Usage: "show everything inspect can tell (for now: --env as well)"},
			&cli.StringFlag{Name: "search", Usage: "search the saved memory for `STRING` and print each match instead of the inspection"},
			&cli.StringFlag{Name: "search-regex", Usage: "search the saved memory for the regular expression `RE` (Go's RE2 syntax)"},
			&cli.UintFlag{Name: "pid", Usage: "search or dump the memory of process `N` only (a pid inspect lists)"},
			&cli.IntFlag{Name: "context", Value: 16, Usage: "show `N` bytes of memory before and after each match (at most 4096)"},
			&cli.StringFlag{Name: "dump-memory", Usage: "write the saved memory of the process --pid names into directory `DIR`, one file per region named START-END.bin"},
		},
		Action: func(c *cli.Context) error {
			asJSON, err := formatIsJSON(c)
			if err != nil {
				return err
			}
			if c.NArg() != 1 {
				_ = cli.ShowSubcommandHelp(c)
				return fmt.Errorf("\"inspect\" requires exactly 1 argument, the checkpoint's path (got %d)", c.NArg())
			}
			mem, err := memoryRequestFrom(c)
			if err != nil {
				return err
			}
			ck, err := libcheckpoint.OpenCheckpoint(c.Args().First(), libcheckpoint.InspectOptions{Verify: c.Bool("verify")})
			if err != nil {
				return err
			}
			defer ck.Close()
			if mem.dumpDir != "" {
				return dumpMemory(c.App.Writer, ck, mem, asJSON)
			}
			if mem.pattern != nil {
				return searchMemory(c.App.Writer, ck, mem, asJSON)
			}
			ins := ck.Inspection
			showEnv := c.Bool("env") || c.Bool("all")
			if !showEnv {
				// The environment may hold secrets: shown when asked.
				for i := range ins.Processes {
					ins.Processes[i].Env = nil
				}
			}
			if asJSON {
				return writeJSON(c.App.Writer, ins)
			}
			printInspection(c.App.Writer, ins)
			return nil
		},
	}
}

// formatIsJSON checks the --format flag: "text" or "json".
func formatIsJSON(c *cli.Context) (bool, error) {
	switch f := c.String("format"); f {
	case "text":
		return false, nil
	case "json":
		return true, nil
	default:
		return false, fmt.Errorf("--format: %q is not 'text' or 'json'", f)
	}
}

// statsOutput is what checkpoint's and restore's --print-stats and
// --format ask for.
type statsOutput struct {
	print bool // --print-stats
	json  bool // --format json
}

func statsOutputFrom(c *cli.Context) (statsOutput, error) {
	asJSON, err := formatIsJSON(c)
	if err != nil {
		return statsOutput{}, err
	}
	if c.IsSet("format") && !c.Bool("print-stats") {
		return statsOutput{}, errors.New("--format: only sets the format of --print-stats output; add --print-stats")
	}
	return statsOutput{print: c.Bool("print-stats"), json: asJSON}, nil
}

// dump prints the statistics of a successful checkpoint. Missing
// statistics are a warning: the checkpoint itself succeeded.
func (s statsOutput) dump(w io.Writer, res *libcheckpoint.CheckpointResult) error {
	if !s.print {
		return nil
	}
	var st *libcheckpoint.DumpStats
	if res.Manifest != nil {
		st = res.Manifest.DumpStats
	}
	if st == nil {
		var err error
		if st, err = libcheckpoint.ReadDumpStats(filepath.Dir(res.LogPath)); err != nil {
			logrus.Warnf("--print-stats: CRIU's dump statistics can't be read: %v", err)
			return nil
		}
	}
	if s.json {
		return writeJSON(w, st.Report())
	}
	printDumpReport(w, st.Report(), uint64(os.Getpagesize()))
	return nil
}

// restore prints the statistics of a restore whose CRIU work directory
// is dir.
func (s statsOutput) restore(w io.Writer, r libcheckpoint.Restored) error {
	st, err := r.Stats, r.StatsErr
	if err != nil || st == nil {
		logrus.Warnf("--print-stats: CRIU's restore statistics can't be read: %v", err)
		return nil
	}
	if s.json {
		return writeJSON(w, st.Report())
	}
	printRestoreReport(w, st.Report())
	return nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func printInspection(out io.Writer, ins *libcheckpoint.Inspection) {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "Checkpoint:\t%s\n", ins.Dir)
	if v := ins.Verified; v != nil {
		fmt.Fprintf(w, "Verified:\t%d image files, %s, match their %s digests\n", v.Files, humanBytes(uint64(v.Bytes)), v.Algorithm)
	}
	if e := ins.Engine; e != nil {
		printEngine(w, e)
	}
	if m := ins.Manifest; m != nil {
		if ins.Engine == nil {
			fmt.Fprintf(w, "Container:\t%s\n", m.ContainerID)
		}
		if m.Bundle != "" {
			fmt.Fprintf(w, "Bundle:\t%s\n", m.Bundle)
		}
		created := m.Created.Format(time.RFC3339)
		if !m.Completed.IsZero() {
			created += fmt.Sprintf(", took %s", m.Completed.Sub(m.Created).Round(time.Millisecond))
		}
		fmt.Fprintf(w, "Created:\t%s (%s)\n", created, m.State)
		v := m.Versions
		fmt.Fprintf(w, "Made by:\truncr %s, libcontainer %s, CRIU %s, kernel %s\n",
			orUnknown(v.Runcr), orUnknown(v.Libcontainer), orUnknown(v.CRIU), orUnknown(v.Kernel))
		fmt.Fprintf(w, "Options:\t%s\n", orNone(strings.Join(manifestFlags(m.Options), " ")))
	} else if ins.Engine == nil {
		fmt.Fprintf(w, "Manifest:\tno manifest: made by runc or an older runcr\n")
	}
	fmt.Fprintf(w, "Images:\tCRIU image version %d, LSM %s\n", ins.ImageVersion, ins.LSM)
	w.Flush()

	fmt.Fprintf(out, "\nProcesses: %d\n", len(ins.Processes))
	w = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	// NAME is the kernel's (comm): it differs from the command line when
	// a process changed it, e.g. busybox's shell running an applet.
	fmt.Fprintln(w, "  PID\tPPID\tTHREADS\tSTATE\tPAGES\tMEMORY\tNAME\tCOMMAND")
	for _, p := range ins.Processes {
		fmt.Fprintf(w, "  %d\t%d\t%d\t%s\t%d\t%s\t%s%s\t%s\n", p.PID, p.PPID, p.Threads, p.State,
			p.Memory.Pages, humanBytes(p.Memory.Bytes), strings.Repeat("  ", p.Depth), p.Comm, commandLine(p))
	}
	w.Flush()

	printProcessDetails(out, ins.Processes)

	m := ins.Memory
	fmt.Fprintf(out, "\nMemory: %d pages, %s (%d bytes); %s mapped\n", m.Pages, humanBytes(m.Bytes), m.Bytes, humanBytes(m.MappedBytes))
	if m.PagesInParent > 0 || m.PagesLazy > 0 {
		fmt.Fprintf(out, "  of which %d pages in parent images, %d lazy\n", m.PagesInParent, m.PagesLazy)
	}

	f := ins.Files
	kinds := make([]string, 0, len(f.ByKind))
	for k, n := range f.ByKind {
		kinds = append(kinds, fmt.Sprintf("%s %d", k, n))
	}
	sort.Strings(kinds)
	fmt.Fprintf(out, "\nOpen files: %d descriptors", f.Descriptors)
	if len(kinds) > 0 {
		fmt.Fprintf(out, " (%s)", strings.Join(kinds, ", "))
	}
	fmt.Fprintln(out)
	w = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	for _, r := range f.RegularFiles {
		fmt.Fprintf(w, "  pid %d fd %d\t%s\n", r.PID, r.FD, r.Path)
	}
	w.Flush()
	if len(f.Sockets) > 0 {
		fmt.Fprintf(out, "Sockets: %d\n", len(f.Sockets))
		w = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		for _, s := range f.Sockets {
			desc := strings.Join(nonEmpty(s.Kind, s.Family, s.Type, s.Protocol, s.State), " ")
			addr := orNone(s.Local)
			if s.Peer != "" {
				addr += " -> " + s.Peer
			}
			fmt.Fprintf(w, "  pid %d fd %d\t%s\t%s\n", s.PID, s.FD, desc, addr)
		}
		w.Flush()
	}

	var own, shared []string
	for _, ns := range ins.Namespaces {
		if ns.Own {
			own = append(own, ns.Kind)
		} else {
			shared = append(shared, ns.Kind)
		}
	}
	fmt.Fprintf(out, "\nNamespaces: own: %s; the host's: %s\n", orNone(strings.Join(own, " ")), orNone(strings.Join(shared, " ")))

	if len(ins.Interfaces) > 0 {
		fmt.Fprintf(out, "\nNetwork interfaces: %d\n", len(ins.Interfaces))
		w = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		for _, i := range ins.Interfaces {
			state := "down"
			if i.Up {
				state = "up"
			}
			fmt.Fprintf(w, "  %s\t%s\t%s\tmtu %d\t%s\n", i.Name, i.Type, state, i.MTU, orNone(i.MAC))
		}
		w.Flush()
	}

	if len(ins.Mounts) > 0 {
		fmt.Fprintf(out, "\nMounts: %d\n", len(ins.Mounts))
		w = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		for _, m := range ins.Mounts {
			ext := ""
			if m.External {
				ext = " (external)"
			}
			root := ""
			if m.Root != "/" && m.Root != "" {
				root = " root " + m.Root
			}
			fmt.Fprintf(w, "  %s\t%s\t%s%s%s\n", m.Mountpoint, m.FSType, orNone(m.Source), root, ext)
		}
		w.Flush()
	}
	if e := ins.Engine; e != nil {
		printRootfsChanges(out, e)
	}

	if d := ins.Dump; d != nil {
		fmt.Fprintln(out)
		printDumpReport(out, d, ins.PageSize)
	} else {
		fmt.Fprintln(out, "\nDump statistics: none (no stats-dump)")
	}
	if len(ins.Warnings) > 0 {
		fmt.Fprintln(out, "\nWarnings:")
		for _, s := range ins.Warnings {
			fmt.Fprintf(out, "  %s\n", s)
		}
	}
}

// printDumpReport prints CRIU's dump statistics (inspect and checkpoint
// --print-stats).
func printDumpReport(out io.Writer, d *libcheckpoint.DumpReport, pageSize uint64) {
	fmt.Fprintln(out, "Dump statistics:")
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "  freezing time:\t%s\n", ms(d.FreezingMs))
	fmt.Fprintf(w, "  frozen time:\t%s\n", ms(d.FrozenMs))
	fmt.Fprintf(w, "  memdump time:\t%s\n", ms(d.MemdumpMs))
	fmt.Fprintf(w, "  memwrite time:\t%s\n", ms(d.MemwriteMs))
	fmt.Fprintf(w, "  pages scanned:\t%d\n", d.PagesScanned)
	fmt.Fprintf(w, "  pages skipped:\t%d (unchanged since the parent images)\n", d.PagesSkippedParent)
	fmt.Fprintf(w, "  pages written:\t%d (%s)\n", d.PagesWritten, humanBytes(d.PagesWritten*pageSize))
	if d.PagesLazy > 0 {
		fmt.Fprintf(w, "  pages lazy:\t%d\n", d.PagesLazy)
	}
	w.Flush()
	printFrozenProfile(out, d.Profile)
}

// printFrozenProfile prints where the time the container was stopped
// went (libcheckpoint/frozenprofile.go), if the checkpoint recorded it.
func printFrozenProfile(out io.Writer, p *libcheckpoint.FrozenProfile) {
	if p == nil {
		return
	}
	fmt.Fprintln(out, "Downtime profile:")
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	if p.StoppedMs > 0 {
		fmt.Fprintf(w, "  stopped (runcr's freeze to thaw):\t%s\n", ms(p.StoppedMs))
		fmt.Fprintf(w, "  of which outside CRIU's frozen time:\t%s\n", ms(p.OutsideCriuMs))
	}
	fmt.Fprintf(w, "  CRIU's run (dump.log):\t%s\n", ms(p.CriuLogMs))
	for _, ph := range p.Phases {
		mark := ""
		if ph.Frozen {
			mark = " (frozen)"
		}
		fmt.Fprintf(w, "    %s:\t%s%s\n", ph.Name, ms(ph.Ms), mark)
	}
	w.Flush()
}

// printRestoreReport prints CRIU's restore statistics (restore
// --print-stats).
func printRestoreReport(out io.Writer, r *libcheckpoint.RestoreReport) {
	fmt.Fprintln(out, "Restore statistics:")
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "  forking time:\t%s\n", ms(r.ForkingMs))
	fmt.Fprintf(w, "  restore time:\t%s\n", ms(r.RestoreMs))
	fmt.Fprintf(w, "  pages restored:\t%d\n", r.PagesRestored)
	fmt.Fprintf(w, "  pages compared:\t%d\n", r.PagesCompared)
	fmt.Fprintf(w, "  pages skipped (COW):\t%d\n", r.PagesSkippedCow)
	w.Flush()
}

func ms(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) + " ms" }

// manifestFlags gives the checkpoint options a manifest records as the
// flags that set them (the image path, which may have moved, left out).
func manifestFlags(o libcheckpoint.ManifestOptions) []string {
	var flags []string
	str := func(name, v string) {
		if v != "" {
			flags = append(flags, "--"+name+" "+v)
		}
	}
	boolean := func(name string, v bool) {
		if v {
			flags = append(flags, "--"+name)
		}
	}
	str("work-path", o.WorkPath)
	str("parent-path", o.ParentPath)
	boolean("leave-running", o.LeaveRunning)
	boolean("tcp-established", o.TCPEstablished)
	boolean("tcp-skip-in-flight", o.TCPSkipInFlight)
	boolean("ext-unix-sk", o.ExtUnixSockets)
	boolean("shell-job", o.ShellJob)
	boolean("file-locks", o.FileLocks)
	boolean("link-remap", o.LinkRemap)
	str("manage-cgroups-mode", o.ManageCgroupsMode)
	for _, ns := range o.EmptyNamespaces {
		str("empty-ns", ns)
	}
	boolean("auto-dedup", o.AutoDedup)
	boolean("lazy-pages", o.LazyPages)
	str("page-server", o.PageServer)
	boolean("pre-dump", o.PreDump)
	return flags
}

// commandLine shows a process's command line on one line, or "-" when
// it could not be read.
func commandLine(p libcheckpoint.InspectedProcess) string {
	if len(p.Args) == 0 {
		return "-"
	}
	parts := make([]string, len(p.Args))
	for i, a := range p.Args {
		if a == "" || strings.ContainsFunc(a, func(r rune) bool { return r <= ' ' || r == '"' || r == 0x7f }) {
			a = strconv.Quote(a)
		}
		parts[i] = a
	}
	s := strings.Join(parts, " ")
	const maxLen = 100
	if r := []rune(s); len(r) > maxLen {
		s = string(r[:maxLen-3]) + "..."
	}
	return s
}

func humanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func orUnknown(s string) string {
	if s == "" {
		return "?"
	}
	return s
}

func nonEmpty(ss ...string) []string {
	out := ss[:0:0]
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// printEngine prints what an engine archive says of its container.
func printEngine(w io.Writer, e *libcheckpoint.EngineInfo) {
	engine := orUnknown(e.Engine)
	if e.EngineVersion != "" {
		engine += " " + e.EngineVersion
	}
	fmt.Fprintf(w, "Engine:\t%s\n", engine)
	fmt.Fprintf(w, "Container:\t%s\n", orUnknown(e.ContainerName))
	fmt.Fprintf(w, "Container ID:\t%s\n", orUnknown(e.ContainerID))
	if e.PodName != "" || e.PodNamespace != "" {
		fmt.Fprintf(w, "Pod:\t%s (namespace %s)\n", orUnknown(e.PodName), orUnknown(e.PodNamespace))
	}
	fmt.Fprintf(w, "Image:\t%s\n", orUnknown(e.Image))
	runtime := orUnknown(e.Runtime)
	if e.RuntimeVersion != "" {
		runtime += " (" + e.RuntimeVersion + ")"
	}
	fmt.Fprintf(w, "Runtime:\t%s\n", runtime)
	fmt.Fprintf(w, "CRIU:\t%s\n", orUnknown(e.CRIUVersion))
	if e.Created != nil {
		fmt.Fprintf(w, "Created:\t%s\n", e.Created.Format(time.RFC3339))
	}
	if e.Checkpointed != nil {
		fmt.Fprintf(w, "Checkpointed:\t%s\n", e.Checkpointed.Format(time.RFC3339))
	}
	fmt.Fprintf(w, "CRIU images:\t%s\n", humanBytes(uint64(e.CheckpointBytes)))
	names := make([]string, 0, len(e.Files))
	for _, f := range e.Files {
		names = append(names, f.Name)
	}
	fmt.Fprintf(w, "Archive files:\t%s\n", orNone(strings.Join(names, " ")))
	if len(e.Skipped) > 0 {
		fmt.Fprintf(w, "Not read:\t%s\n", strings.Join(e.Skipped, " "))
	}
}

// printRootfsChanges prints an engine archive's rootfs diff and deletions.
func printRootfsChanges(out io.Writer, e *libcheckpoint.EngineInfo) {
	if d := e.RootfsDiff; d != nil {
		fmt.Fprintf(out, "\nRootfs diff: %s (%s), %d entries: %d files (%s), %d directories, %d symlinks, %d hard links, %d whiteouts\n",
			humanBytes(uint64(d.Bytes)), d.Compression, d.Entries, d.Files, humanBytes(uint64(d.ContentBytes)), d.Dirs, d.Symlinks, d.HardLinks, d.Whiteouts)
		for _, p := range d.Paths {
			fmt.Fprintf(out, "  %s\n", p)
		}
		if d.Entries > len(d.Paths) {
			fmt.Fprintf(out, "  ... (%d more)\n", d.Entries-len(d.Paths))
		}
	} else {
		fmt.Fprintln(out, "\nRootfs diff: none")
	}
	fmt.Fprintf(out, "Deleted files: %d\n", e.DeletedFilesCount)
	for _, p := range e.DeletedFiles {
		fmt.Fprintf(out, "  /%s\n", p)
	}
	if e.DeletedFilesCount > len(e.DeletedFiles) {
		fmt.Fprintf(out, "  ... (%d more)\n", e.DeletedFilesCount-len(e.DeletedFiles))
	}
}
