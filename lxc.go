package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/sirupsen/logrus"
	"github.com/urfave/cli/v2"

	"github.com/runcr/runcr/libcheckpoint"
)

// lxcName is the dialect's command name, and the argv[0] basename under
// which runcr behaves as lxc-checkpoint(1).
const lxcName = "lxc-checkpoint"

// lxcDispatch rewrites argv so that runcr started as "lxc-checkpoint" runs
// its lxc-checkpoint command.
func lxcDispatch(argv []string) []string {
	if len(argv) > 0 && filepath.Base(argv[0]) == lxcName {
		return append([]string{argv[0], lxcName}, argv[1:]...)
	}
	return argv
}

// lxcCommand is `runcr lxc-checkpoint`. Its arguments are parsed by
// lxcApp, with getopt's rules, not by runcr's own parser.
func lxcCommand() *cli.Command {
	return &cli.Command{
		Name:            lxcName,
		Usage:           "checkpoint or restore a container with lxc-checkpoint(1)'s options",
		ArgsUsage:       "-n NAME -D PATH [-r] [-s] [-v] [-d|-F] ...",
		SkipFlagParsing: true,
		HideHelp:        true,
		Action: func(c *cli.Context) error {
			return lxcRun(c, c.Args().Slice(), os.Stdout, os.Stderr)
		},
	}
}

// lxcFlags are lxc-checkpoint(1)'s options (lxc 4 to 6), with lxc's long
// names; the first name is the one lxcCanonical emits.
func lxcFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "name", Aliases: []string{"n"}, Usage: "id of the container to checkpoint or restore"},
		&cli.StringFlag{Name: "checkpoint-dir", Aliases: []string{"D"}, Usage: "directory of the checkpoint images (required)"},
		&cli.BoolFlag{Name: "restore", Aliases: []string{"r"}, Usage: "restore the container instead of checkpointing it"},
		&cli.BoolFlag{Name: "stop", Aliases: []string{"s"}, Usage: "stop the container after checkpointing (default: it keeps running)"},
		&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "quote CRIU's log when it fails (CRIU always logs at its most verbose level)"},
		&cli.BoolFlag{Name: "daemon", Aliases: []string{"d"}, Usage: "restore detached (the default); only with -r"},
		&cli.BoolFlag{Name: "foreground", Aliases: []string{"F"}, Usage: "restore in the foreground and wait for the container; only with -r"},
		&cli.BoolFlag{Name: "pre-dump", Aliases: []string{"p"}, Usage: "dump the memory only and keep the container running"},
		&cli.StringFlag{Name: "predump-dir", Usage: "images of an earlier pre-dump, relative to -D"},
		&cli.StringFlag{Name: "rcfile", Usage: "config.json of the bundle to restore with (default: the bundle the checkpoint recorded)"},
		&cli.StringFlag{Name: "lxcpath", Aliases: []string{"P"}, Usage: "container state directory, as runcr's --root"},
		&cli.StringFlag{Name: "logfile", Aliases: []string{"o"}, Usage: "write runcr's log to FILE"},
		&cli.StringFlag{Name: "logpriority", Aliases: []string{"l"}, Usage: "log level: TRACE, DEBUG, INFO, NOTICE, WARN, ERROR, CRIT, ALERT or FATAL"},
		&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print no log messages; errors still go to stderr"},
		&cli.BoolFlag{Name: "help", Aliases: []string{"h", "?"}, Usage: "print this help"},
		&cli.BoolFlag{Name: "usage", Usage: "print a short usage message"},
		&cli.BoolFlag{Name: "version", Usage: "print the version"},
	}
}

// lxcUnsupported are lxc-checkpoint options runcr refuses by name, with why.
var lxcUnsupported = map[string]string{
	"A":             "runcr passes no CRIU action script (libcontainer's CRIU options have none)",
	"action-script": "runcr passes no CRIU action script (libcontainer's CRIU options have none)",
}

// lxcApp parses an lxc-checkpoint command line; parent holds runcr's
// global flags (--root, --criu, ...), which the lxc options override.
func lxcApp(parent *cli.Context, stdout, stderr io.Writer) *cli.App {
	app := &cli.App{
		Name:        lxcName,
		Flags:       lxcFlags(),
		HideHelp:    true,
		HideVersion: true,
		// urfave prints its help when --help is set, even with HideHelp;
		// it prints lxc's, to stderr as lxc does.
		CustomAppHelpTemplate: lxcHelp(lxcFlags()),
		Writer:                stderr,
		ErrWriter:             stderr,
		ExitErrHandler:        func(*cli.Context, error) {},
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return fmt.Errorf("%s: %w; see %s --help", lxcName, err, lxcName)
		},
		Action: func(c *cli.Context) error { return lxcAction(parent, c, stdout, stderr) },
	}
	return app
}

// lxcRun canonicalises args with getopt's rules and runs the dialect.
func lxcRun(parent *cli.Context, args []string, stdout, stderr io.Writer) error {
	canon, err := lxcCanonical(args, lxcFlags())
	if err != nil {
		return err
	}
	return lxcApp(parent, stdout, stderr).Run(append([]string{lxcName}, canon...))
}

// lxcInvocation is what one lxc-checkpoint command line asks for, in the
// library's terms.
type lxcInvocation struct {
	// ID is the container (-n, or lxc's lone positional name).
	ID string
	// Restore selects Restore (-r); otherwise Checkpoint.
	Restore bool
	// Checkpoint are the checkpoint options (without -r).
	Checkpoint libcheckpoint.CheckpointOptions
	// RestoreOpts are the restore options (with -r). Bundle is empty
	// unless --rcfile was given: lxcBundle fills it from the manifest.
	RestoreOpts libcheckpoint.RestoreOptions
	// Root overrides runcr's --root (-P); empty keeps it.
	Root string
	// LogFile is -o; empty keeps runcr's --log.
	LogFile string
	// LogLevel is -l mapped onto logrus; nil keeps runcr's level.
	LogLevel *logrus.Level
	// Quiet drops log messages (-q); errors still reach stderr.
	Quiet bool
	// Verbose quotes CRIU's log on failure (-v).
	Verbose bool
}

// lxcLevels maps lxc's log priorities onto logrus. runcr logs nothing
// more severe than an error, and must still report its errors, so lxc's
// priorities above ERROR mean "errors only"; logrus has no NOTICE.
var lxcLevels = map[string]logrus.Level{
	"TRACE":  logrus.TraceLevel,
	"DEBUG":  logrus.DebugLevel,
	"INFO":   logrus.InfoLevel,
	"NOTICE": logrus.InfoLevel,
	"WARN":   logrus.WarnLevel,
	"ERROR":  logrus.ErrorLevel,
	"CRIT":   logrus.ErrorLevel,
	"ALERT":  logrus.ErrorLevel,
	"FATAL":  logrus.ErrorLevel,
}

func lxcInvalid(opt, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", libcheckpoint.ErrInvalidOption, opt, fmt.Sprintf(format, args...))
}

// lxcOptions is the one conversion from lxc-checkpoint's options to the
// library's, applying lxc-checkpoint's rules on which options go together.
func lxcOptions(c *cli.Context) (lxcInvocation, error) {
	inv := lxcInvocation{
		ID:      c.String("name"),
		Restore: c.Bool("restore"),
		Quiet:   c.Bool("quiet"),
		Verbose: c.Bool("verbose"),
		LogFile: c.String("logfile"),
	}
	// Like lxc, a lone argument is the name when -n is not given.
	switch {
	case c.NArg() == 1 && !c.IsSet("name"):
		inv.ID = c.Args().First()
	case c.NArg() > 0:
		return inv, lxcInvalid("-n", "unexpected argument(s) %q; give the container's name once, with -n NAME", c.Args().Slice())
	}
	if inv.ID == "" {
		return inv, lxcInvalid("-n", "no container name given; give -n NAME")
	}
	dir := c.String("checkpoint-dir")
	if dir == "" {
		return inv, lxcInvalid("-D", "is required: give the checkpoint directory with -D PATH")
	}
	foreground, daemon := c.Bool("foreground"), c.Bool("daemon")
	switch {
	case inv.Restore && c.Bool("stop"):
		return inv, lxcInvalid("-s", "can't be used with -r: -s stops the container after a checkpoint")
	case inv.Restore && c.Bool("pre-dump"):
		return inv, lxcInvalid("-p", "can't be used with -r: -p is a kind of checkpoint")
	case !inv.Restore && (daemon || foreground):
		return inv, lxcInvalid("-d/-F", "only apply to a restore; add -r or drop them")
	case daemon && foreground:
		return inv, lxcInvalid("-d/-F", "give one: -d restores detached (the default), -F in the foreground")
	case c.Bool("stop") && c.Bool("pre-dump"):
		return inv, lxcInvalid("-s", "can't be used with -p: a pre-dump always leaves the container running")
	case !inv.Restore && c.IsSet("rcfile"):
		return inv, lxcInvalid("--rcfile", "only applies to a restore (-r); a checkpoint uses the container's own configuration")
	}
	if p := c.String("logpriority"); c.IsSet("logpriority") {
		level, ok := lxcLevels[strings.ToUpper(p)]
		if !ok {
			return inv, lxcInvalid("-l", "unknown log priority %q; use TRACE, DEBUG, INFO, NOTICE, WARN, ERROR, CRIT, ALERT or FATAL", p)
		}
		inv.LogLevel = &level
	}
	if p := c.String("lxcpath"); c.IsSet("lxcpath") {
		abs, err := filepath.Abs(p)
		if p == "" || err != nil || abs == "/" {
			return inv, lxcInvalid("-P", "%q must name a directory other than /", p)
		}
		inv.Root = abs
	}
	if inv.Restore {
		inv.RestoreOpts = libcheckpoint.RestoreOptions{
			CommonOptions: libcheckpoint.CommonOptions{ImagePath: dir},
			Detach:        !foreground,
			ParentPath:    c.String("predump-dir"),
		}
		if rc := c.String("rcfile"); c.IsSet("rcfile") {
			// runcr restores from an OCI bundle: config.json with the
			// rootfs its root.path names relative to it.
			if filepath.Base(rc) != "config.json" {
				return inv, lxcInvalid("--rcfile", "%q is not a config.json: give the config.json of the container's OCI bundle", rc)
			}
			inv.RestoreOpts.Bundle = filepath.Dir(rc)
		}
		return inv, nil
	}
	inv.Checkpoint = libcheckpoint.NewCheckpointOptions()
	inv.Checkpoint.ImagePath = dir
	inv.Checkpoint.LeaveRunning = !c.Bool("stop")
	inv.Checkpoint.PreDump = c.Bool("pre-dump")
	inv.Checkpoint.ParentPath = c.String("predump-dir")
	return inv, nil
}

// lxcBundle returns the bundle the checkpoint in dir recorded in its
// manifest: lxc-checkpoint -r names no bundle, and the working directory
// must not matter.
func lxcBundle(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", lxcInvalid("-D", "%v", err)
	}
	if fi, err := os.Stat(abs); err != nil || !fi.IsDir() {
		return "", lxcInvalid("-D", "%s is not a directory; give the directory a checkpoint (lxc-checkpoint without -r) wrote", abs)
	}
	m, err := libcheckpoint.ReadManifest(abs)
	if err != nil {
		return "", lxcInvalid("-D", "%s: %v", abs, err)
	}
	if m == nil || m.Bundle == "" {
		return "", lxcInvalid("--rcfile", "%s has no %s naming the container's bundle (a checkpoint made by runc, or none); give --rcfile BUNDLE/config.json", abs, libcheckpoint.ManifestFile)
	}
	return m.Bundle, nil
}

// lxcAction runs the command: usage and version first, as lxc does (urfave
// has printed the help for -h already), then
// the options' rules, logging, and the library.
func lxcAction(parent, c *cli.Context, stdout, stderr io.Writer) error {
	switch {
	case c.Bool("usage"):
		fmt.Fprint(stderr, lxcUsage(c.App.Flags))
		return nil
	case c.Bool("version"):
		fmt.Fprintf(stdout, "runcr version %s (%s)\n", version, lxcName)
		return nil
	}
	inv, err := lxcOptions(c)
	if err != nil {
		return err
	}
	if err := lxcLogging(parent, inv); err != nil {
		return err
	}
	rt := lxcRuntime(parent, inv)
	if !inv.Restore {
		return lxcError(withCriu(parent, rt, inv.ID, func(ctx context.Context) error {
			_, err := rt.Checkpoint(ctx, inv.ID, inv.Checkpoint)
			return err
		}))
	}
	if _, err := rootlessFlag(parent); err != nil {
		return lxcError(err)
	}
	if inv.RestoreOpts.Bundle == "" {
		if inv.RestoreOpts.Bundle, err = lxcBundle(inv.RestoreOpts.ImagePath); err != nil {
			return err
		}
	}
	if !inv.RestoreOpts.Detach {
		defer foreground(&inv.RestoreOpts)()
	}
	var status int
	err = withCriu(parent, rt, "", func(ctx context.Context) (err error) {
		status, err = rt.Restore(ctx, inv.ID, inv.RestoreOpts)
		return err
	})
	if err != nil {
		return lxcError(err)
	}
	if status != 0 {
		return cli.Exit("", status) // the container's own exit status
	}
	return nil
}

// lxcRuntime is runcr's global settings with -P in place of --root.
func lxcRuntime(parent *cli.Context, inv lxcInvocation) *libcheckpoint.Runtime {
	rt := runtimeFrom(parent)
	if inv.Root != "" {
		rt.Root = inv.Root
	}
	return rt
}

// lxcLogging applies -o, -l, -q and -v over runcr's logging set-up.
func lxcLogging(parent *cli.Context, inv lxcInvocation) error {
	if inv.LogFile != "" || (inv.LogLevel != nil && *inv.LogLevel >= logrus.DebugLevel) {
		if inv.LogFile != "" {
			if err := parent.Set("log", inv.LogFile); err != nil {
				return err
			}
		}
		if inv.LogLevel != nil && *inv.LogLevel >= logrus.DebugLevel {
			if err := parent.Set("debug", "true"); err != nil {
				return err
			}
		}
		if err := setupLogging(parent); err != nil {
			if msg, ok := strings.CutPrefix(err.Error(), "--log: "); ok && inv.LogFile != "" {
				return lxcInvalid("-o", "%s", msg)
			}
			return err
		}
	}
	if inv.LogLevel != nil {
		logrus.SetLevel(*inv.LogLevel)
	}
	if inv.Quiet && parent.String("log") == "" {
		logrus.SetOutput(io.Discard)
	}
	if f, ok := logrus.StandardLogger().Formatter.(*criuQuoteFilter); ok && inv.Verbose {
		f.quote = true
	}
	return nil
}

// lxcError names lxc's options in the library's errors where they say
// which runcr option was wrong: -D is --image-path, --rcfile is --bundle,
// -P is --root. A refused option (libcheckpoint.OptionError) is renamed
// by its name; the few other messages that mention an option (a
// checkpoint that never finished, a missing container) by their text.
func lxcError(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	var oe *libcheckpoint.OptionError
	if errors.As(err, &oe) {
		if name, ok := lxcOptionName[oe.Option]; ok {
			renamed := *oe
			renamed.Option = name
			msg = strings.Replace(msg, oe.Error(), renamed.Error(), 1)
		}
	}
	msg = lxcOptionMentions.Replace(msg)
	if msg == err.Error() {
		return err
	}
	return &renamedError{msg: msg, err: err}
}

// lxcOptionName is lxc-checkpoint's spelling of a runcr option.
var lxcOptionName = map[string]string{
	"--image-path": "-D",
	"--bundle":     "--rcfile",
}

var lxcOptionMentions = strings.NewReplacer(
	": --image-path:", ": -D:",
	": --image-path ", ": -D ",
	" under --root ", " under -P ",
)

// renamedError is an error with a reworded message that still unwraps to
// the original (and so to the library's sentinels).
type renamedError struct {
	msg string
	err error
}

func (e *renamedError) Error() string { return e.msg }
func (e *renamedError) Unwrap() error { return e.err }

// lxcCanonical rewrites an lxc-checkpoint command line as glibc's
// getopt_long would read it: clusters of short options (-rF, -sv),
// values attached to short options (-Ddir, -rDdir), unambiguous prefixes
// of long options (--checkpoint=dir, --rest), options after operands,
// and "--". It returns "--long[=value]" options, then "--", then the
// operands, so the flag parser sees one unambiguous form.
func lxcCanonical(args []string, flags []cli.Flag) ([]string, error) {
	type opt struct {
		long  string
		value bool
	}
	short := map[string]opt{}
	long := map[string]opt{}
	var longNames []string
	for _, f := range flags {
		names := f.Names()
		_, isBool := f.(*cli.BoolFlag)
		o := opt{long: names[0], value: !isBool}
		for _, n := range names {
			if len(n) == 1 {
				short[n] = o
			} else {
				long[n] = o
				longNames = append(longNames, n)
			}
		}
	}
	sort.Strings(longNames)
	var out, operands []string
	lxcpaths := 0
	emit := func(o opt, value string) error {
		if o.long == "lxcpath" {
			if lxcpaths++; lxcpaths > 1 {
				return lxcInvalid("-P", "given twice; lxc-checkpoint takes one state directory")
			}
		}
		if o.value {
			out = append(out, "--"+o.long+"="+value)
		} else {
			out = append(out, "--"+o.long)
		}
		return nil
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			operands = append(operands, args[i+1:]...)
			i = len(args)
		case strings.HasPrefix(a, "--"):
			name, value, hasValue := strings.Cut(a[2:], "=")
			if why, ok := lxcUnsupported[name]; ok {
				return nil, lxcInvalid("--"+name, "not supported: %s", why)
			}
			o, ok := long[name]
			if !ok {
				var matches []string
				for _, n := range longNames {
					if strings.HasPrefix(n, name) && (len(matches) == 0 || long[n] != long[matches[0]]) {
						matches = append(matches, n)
					}
				}
				switch len(matches) {
				case 0:
					return nil, lxcInvalid("--"+name, "unknown option; see %s --help", lxcName)
				case 1:
					o = long[matches[0]]
				default:
					return nil, lxcInvalid("--"+name, "ambiguous: could be --%s", strings.Join(matches, ", --"))
				}
			}
			switch {
			case o.value && !hasValue:
				if i+1 >= len(args) {
					return nil, lxcInvalid("--"+o.long, "needs a value")
				}
				i++
				value = args[i]
			case !o.value && hasValue:
				return nil, lxcInvalid("--"+o.long, "takes no value")
			}
			if err := emit(o, value); err != nil {
				return nil, err
			}
		case len(a) > 1 && a[0] == '-':
			for j := 1; j < len(a); j++ {
				ch := a[j : j+1]
				if why, ok := lxcUnsupported[ch]; ok {
					return nil, lxcInvalid("-"+ch, "not supported: %s", why)
				}
				o, ok := short[ch]
				if !ok {
					return nil, lxcInvalid("-"+ch, "unknown option; see %s --help", lxcName)
				}
				if !o.value {
					if err := emit(o, ""); err != nil {
						return nil, err
					}
					continue
				}
				value := a[j+1:]
				if value == "" {
					if i+1 >= len(args) {
						return nil, lxcInvalid("-"+ch, "needs a value")
					}
					i++
					value = args[i]
				}
				if err := emit(o, value); err != nil {
					return nil, err
				}
				break
			}
		default:
			operands = append(operands, a)
		}
	}
	return append(append(out, "--"), operands...), nil
}

// lxcMetavar is "=VALUE" for an option that takes one, as lxc writes it.
func lxcMetavar(f cli.Flag) string {
	if _, isBool := f.(*cli.BoolFlag); isBool {
		return ""
	}
	switch f.Names()[0] {
	case "checkpoint-dir", "predump-dir":
		return "=DIR"
	case "lxcpath":
		return "=PATH"
	case "logfile", "rcfile":
		return "=FILE"
	case "logpriority":
		return "=LEVEL"
	}
	return "=" + strings.ToUpper(f.Names()[0])
}

// lxcUsage is the short usage message (--usage), built from the flags.
func lxcUsage(flags []cli.Flag) string {
	var b strings.Builder
	b.WriteString("Usage: " + lxcName)
	for _, f := range flags {
		names := f.Names()
		b.WriteString(" [")
		for _, n := range names[1:] {
			b.WriteString("-" + n + "|")
		}
		b.WriteString("--" + names[0] + lxcMetavar(f))
		b.WriteString("]")
	}
	b.WriteString("\n")
	return b.String()
}

// lxcHelp is the help message (-h, --help), built from the flags.
func lxcHelp(flags []cli.Flag) string {
	var b strings.Builder
	fmt.Fprintf(&b, `Usage: %s -n NAME -D PATH [-r] [-s] [-v] [-d|-F] [option ...]

runcr's lxc-checkpoint(1): checkpoints a running container into PATH (it keeps
running unless -s), or restores it from there (-r; detached unless -F) with the
bundle its checkpoint recorded. Short options combine as with getopt (-rF).

Options:
`, lxcName)
	for _, f := range flags {
		names := f.Names()
		var forms []string
		for _, n := range names[1:] {
			forms = append(forms, "-"+n)
		}
		forms = append(forms, "--"+names[0]+lxcMetavar(f))
		usage := ""
		if u, ok := f.(cli.DocGenerationFlag); ok {
			usage = u.GetUsage()
		}
		fmt.Fprintf(&b, "  %-28s %s\n", strings.Join(forms, ", "), usage)
	}
	fmt.Fprintf(&b, "\nSee runcr-%s(8).\n", lxcName)
	return b.String()
}
