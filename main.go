// Command runcr is a runc-compatible OCI runtime whose checkpoint and
// restore are its own (package libcheckpoint); every other subcommand is
// handed, argv unchanged, to a real runc binary.
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/opencontainers/runtime-spec/specs-go"
	"github.com/sirupsen/logrus"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/runcr/runcr/libcheckpoint"
)

// version is set by the Makefile from git describe.
var version = "dev"

// passThroughCommands are runc's other subcommands; runcr execs runc for
// them (and for any command it doesn't know, so newer runc verbs work).
var passThroughCommands = []struct{ name, usage string }{
	{"create", "create a container"},
	{"delete", "delete any resources held by the container often used with detached container"},
	{"events", "display container events such as OOM notifications, cpu, memory, and IO usage statistics"},
	{"exec", "execute new process inside the container"},
	{"features", "show the enabled features"},
	{"kill", "kill sends the specified signal (default: SIGTERM) to the container's init process"},
	{"list", "lists containers started by runc with the given root"},
	{"pause", "pause suspends all processes inside the container"},
	{"ps", "ps displays the processes running inside a container"},
	{"resume", "resumes all processes that have been previously paused"},
	{"run", "create and run a container"},
	{"spec", "create a new specification file"},
	{"start", "executes the user defined process in a created container"},
	{"state", "output the state of a container"},
	{"update", "update container resource constraints"},
}

// fallbackPath is used when runcr is started without PATH, as Podman does
// for delete, kill and state and CRI-O for checkpoint: runc and criu must
// still be found (/usr/local first, where newer builds are installed).
const fallbackPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

func main() {
	if os.Getenv("PATH") == "" {
		os.Setenv("PATH", fallbackPath)
	}
	app := newApp()
	if err := app.Run(lxcDispatch(os.Args)); err != nil {
		reportError(err)
		var exit cli.ExitCoder
		if errors.As(err, &exit) {
			os.Exit(exit.ExitCode())
		}
		os.Exit(1)
	}
}

func newApp() *cli.App {
	app := &cli.App{
		Name:    "runcr",
		Usage:   "runc-compatible OCI runtime with its own checkpoint and restore",
		Version: version,
		Description: `runcr runs OCI containers through runc and checkpoints and restores them
with CRIU. Its checkpoint and restore take runc's flags; every other command
is passed to runc ($RUNCR_RUNC, or the first runc on PATH) unchanged, so both
see the same containers under --root.`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "debug", Usage: "enable debug logging"},
			&cli.StringFlag{Name: "log", Usage: "set the log file to write runcr logs to (default is '/dev/stderr')"},
			&cli.StringFlag{Name: "log-format", Value: "text", Usage: "set the log format ('text' (default), or 'json')"},
			&cli.StringFlag{Name: "root", Value: defaultRoot(), Usage: "root directory for storage of container state (this should be located in tmpfs)"},
			&cli.BoolFlag{Name: "systemd-cgroup", Usage: "enable systemd cgroup support"},
			&cli.StringFlag{Name: "rootless", Value: "auto", Usage: "ignore cgroup permission errors ('true', 'false', or 'auto')"},
			&cli.StringFlag{Name: "criu", Usage: "path to the criu binary used for checkpoint and restore (default: criu on PATH)"},
			&cli.DurationFlag{Name: "criu-timeout", EnvVars: []string{"RUNCR_CRIU_TIMEOUT"}, Value: libcheckpoint.DefaultCriuTimeout, Usage: "how long checkpoint, restore and check wait on CRIU before stopping it (`DURATION`, e.g. 90s or 1h; 0 waits for ever)"},
		},
		Commands: []*cli.Command{checkpointCommand(), restoreCommand(), checkCommand(), inspectCommand(), diffCommand(), showCommand(), lxcCommand(), migrateCommand(), receiveCommand()},
		Before:   setupLogging,
		// A command runcr doesn't know (a newer runc's) goes to runc too;
		// as an action, so that a missing runc is an error, not exit 0.
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return passThrough(c)
			}
			return cli.ShowAppHelp(c)
		},
		ExitErrHandler:         func(*cli.Context, error) {}, // main reports and exits
		HideHelpCommand:        true,
		UseShortOptionHandling: false,
	}
	for _, pt := range passThroughCommands {
		app.Commands = append(app.Commands, &cli.Command{
			Name:            pt.name,
			Usage:           pt.usage + " (passed to runc)",
			SkipFlagParsing: true,
			Action:          passThrough,
		})
	}
	cli.VersionPrinter = func(c *cli.Context) {
		fmt.Fprintln(c.App.Writer, "runcr version", c.App.Version)
		fmt.Fprintln(c.App.Writer, "spec:", specs.Version)
		fmt.Fprintln(c.App.Writer, "go:", runtime.Version())
	}
	return app
}

// defaultRoot is runc's: /run/runc for root, $XDG_RUNTIME_DIR/runc otherwise.
func defaultRoot() string {
	if xdg := os.Getenv("XDG_RUNTIME_DIR"); xdg != "" && os.Geteuid() != 0 {
		return filepath.Join(xdg, "runc")
	}
	return libcheckpoint.DefaultRoot
}

// setupLogging is the one place logging is configured, as runc's
// --debug, --log and --log-format.
func setupLogging(c *cli.Context) error {
	debug := c.Bool("debug")
	if debug {
		logrus.SetLevel(logrus.DebugLevel)
	}
	var formatter logrus.Formatter = new(logrus.TextFormatter)
	switch f := c.String("log-format"); f {
	case "", "text":
	case "json":
		formatter = new(logrus.JSONFormatter)
	default:
		return fmt.Errorf("--log-format: %q is not 'text' or 'json'", f)
	}
	toTerminal := true
	if path := c.String("log"); path != "" {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND|os.O_SYNC, 0o644)
		if err != nil {
			return fmt.Errorf("--log: %w", err)
		}
		logrus.SetOutput(f)
		toTerminal = false
	} else if _, err := unix.IoctlGetTermios(int(os.Stderr.Fd()), unix.TCGETS); err != nil {
		toTerminal = false
	}
	// libcontainer quotes CRIU's log as a run of warnings. A person at a
	// terminal wants them; an engine parsing our output wants the one error
	// line that names the cause (Podman reads a --log file as a single JSON
	// object, and otherwise picks lines out of stderr), so for engines the
	// quote is kept for --debug. The error itself names the log and cause.
	logrus.SetFormatter(&criuQuoteFilter{Formatter: formatter, quote: debug || toTerminal})
	if root := c.String("root"); c.IsSet("root") {
		abs, err := filepath.Abs(root)
		if err != nil || abs == "/" {
			return fmt.Errorf("--root: %q must name a directory other than /", root)
		}
		return c.Set("root", abs)
	}
	return nil
}

// heldLog keeps what a restore logs out of its stdout and stderr, which
// runc hands on to the restored container: under conmon they are the
// container's own pipes and there is no --log, so a warning there would
// show in `kubectl logs` as the application's output (runc prints nothing
// on success). Held lines are shown with the error when the restore fails,
// and otherwise written to runcr-restore.log beside CRIU's restore.log.
type heldLog struct {
	buf bytes.Buffer
	out io.Writer
}

// holdLog holds the log of this command, unless it goes to --log or the
// user asked for --debug.
func holdLog(c *cli.Context) *heldLog {
	if c.String("log") != "" || c.Bool("debug") {
		return nil
	}
	h := &heldLog{out: logrus.StandardLogger().Out}
	logrus.SetOutput(&h.buf)
	return h
}

// release puts the log back where it went; err is the command's outcome
// and workPath the directory of CRIU's restore.log ("" if gone).
func (h *heldLog) release(err error, workPath string) {
	if h == nil {
		return
	}
	logrus.SetOutput(h.out)
	if h.buf.Len() == 0 {
		return
	}
	var exit cli.ExitCoder
	if err != nil && (!errors.As(err, &exit) || err.Error() != "") {
		_, _ = h.out.Write(h.buf.Bytes())
		return
	}
	if workPath != "" {
		f, ferr := os.OpenFile(filepath.Join(workPath, "runcr-restore.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if ferr == nil {
			_, _ = f.Write(h.buf.Bytes())
			f.Close()
		}
	}
}

// criuQuoteFilter drops libcontainer's quote of CRIU's log unless quote
// is set, and always drops log lines that are noise on every CRIU run.
type criuQuoteFilter struct {
	logrus.Formatter
	quote bool
}

var (
	criuQuoteLine = regexp.MustCompile(`^(--- Quoting ".*"|\d+:.*|\.\.\.|---)$`)
	criuNoiseLine = regexp.MustCompile(`RLIMIT_NOFILE|Hardware breakpoints don't seem to work`)
)

func (f *criuQuoteFilter) Format(e *logrus.Entry) ([]byte, error) {
	if e.Level == logrus.WarnLevel && criuQuoteLine.MatchString(e.Message) {
		if !f.quote || criuNoiseLine.MatchString(e.Message) {
			return nil, nil
		}
	}
	return f.Formatter.Format(e)
}

// reportError logs a command's error, and also prints it to stderr when
// the log goes elsewhere, so a person running runcr always sees it.
func reportError(err error) {
	msg := err.Error()
	var exit cli.ExitCoder
	if errors.As(err, &exit) && msg == "" {
		return // an exit status to pass on, not an error
	}
	logrus.Error(msg)
	if f, ok := logrus.StandardLogger().Out.(*os.File); !ok || f.Fd() != os.Stderr.Fd() {
		fmt.Fprintln(os.Stderr, "runcr:", msg)
	}
}

// runtimeFrom builds the library's view of the global flags. Only
// restore uses --rootless, and checks it first (rootlessFlag); elsewhere
// a bad value is ignored, as runc ignores the flag.
func runtimeFrom(c *cli.Context) *libcheckpoint.Runtime {
	rootless, _ := rootlessFlag(c)
	return &libcheckpoint.Runtime{
		Root:          c.String("root"),
		SystemdCgroup: c.Bool("systemd-cgroup"),
		Rootless:      rootless,
		CriuPath:      c.String("criu"),
		Version:       version,
	}
}

// rootlessFlag parses --rootless as runc does: true, false, or auto (or
// empty) for nil.
func rootlessFlag(c *cli.Context) (*bool, error) {
	switch v := c.String("rootless"); v {
	case "true", "false":
		b := v == "true"
		return &b, nil
	case "", "auto":
		return nil, nil
	default:
		return nil, &libcheckpoint.OptionError{Option: "--rootless", Msg: fmt.Sprintf("%q is not true, false or auto", v)}
	}
}

// runcrOnlyFlags are runcr's global flags that runc doesn't have: they are
// dropped from the argv handed to runc.
var runcrOnlyFlags = []string{"criu", "criu-timeout"}

// withCriu runs fn, a command that runs CRIU for rt, with the process set
// up for CRIU (libcheckpoint.SetupProcess: --criu first on PATH, ...) and
// a context that ends --criu-timeout from now (never, for 0): the library
// then stops CRIU and leaves the container as it was, its error naming the
// flag. For a dump (of container dump), SIGINT, SIGTERM and SIGHUP end the
// context too, rather
// than killing runcr at any moment: also after CRIU's dump succeeded and
// before the manifest says complete, when CRIU kills the container and
// restore would refuse the checkpoint that holds it.
func withCriu(c *cli.Context, rt *libcheckpoint.Runtime, dump string, fn func(context.Context) error) error {
	timeout := c.Duration("criu-timeout")
	if timeout < 0 {
		return fmt.Errorf("--criu-timeout %v: give a positive duration (such as 30m), or 0 to wait for ever", timeout)
	}
	ctx := context.Background()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, timeout,
			fmt.Errorf("--criu-timeout %v passed; if CRIU needs longer, raise it (or RUNCR_CRIU_TIMEOUT)", timeout))
		defer cancel()
	}
	if dump != "" {
		var stop func()
		ctx, stop = cancelOnSignals(ctx)
		defer stop()
	}
	o := libcheckpoint.ProcessOptions{CriuPath: rt.CriuPath}
	if dump != "" {
		o.LockNetworkWithNftables = rt.LocksNetwork(dump)
		o.DumpCgroupYard = true
	}
	undo, err := libcheckpoint.SetupProcess(ctx, o)
	if err != nil {
		return err
	}
	defer undo()
	return fn(ctx)
}

// cancelOnSignals returns a context that SIGINT, SIGTERM or SIGHUP cancel,
// and the function that restores their handling. A signal ignored from
// the start (nohup, a background job) stays ignored.
func cancelOnSignals(parent context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(parent)
	signals := make(chan os.Signal, 4)
	for _, s := range []os.Signal{unix.SIGINT, unix.SIGTERM, unix.SIGHUP} {
		if !signal.Ignored(s) {
			signal.Notify(signals, s)
		}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			case s := <-signals:
				logrus.Warnf("got %v: stopping the checkpoint unless CRIU has finished the dump; the container keeps running", s)
				cancel(fmt.Errorf("got %v", s))
			}
		}
	}()
	return ctx, func() {
		signal.Stop(signals)
		close(done)
		wg.Wait()
		cancel(nil)
	}
}

// passThrough replaces runcr with runc, keeping argv (less runcr's own
// --criu, which runc doesn't know), stdio, environment and so exit status.
func passThrough(c *cli.Context) error {
	runc, err := findRunc()
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	argv := append([]string{"runc"}, stripCriuFlag(os.Args[1:], c.App.Flags)...)
	if err := unix.Exec(runc, argv, os.Environ()); err != nil {
		return cli.Exit(fmt.Sprintf("running %s: %v", runc, err), 1)
	}
	return nil
}

// findRunc returns $RUNCR_RUNC, else the first runc on PATH that is not
// this binary (runcr may be installed as "runc").
func findRunc() (string, error) {
	if p := os.Getenv("RUNCR_RUNC"); p != "" {
		if err := unix.Access(p, unix.X_OK); err != nil {
			return "", fmt.Errorf("RUNCR_RUNC=%s: %w; point it at a runc binary", p, err)
		}
		return p, nil
	}
	self, _ := os.Stat("/proc/self/exe")
	for _, dir := range filepath.SplitList(os.Getenv("PATH")) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, "runc")
		fi, err := os.Stat(p)
		if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			continue
		}
		if self != nil && os.SameFile(fi, self) {
			continue
		}
		return p, nil
	}
	return "", errors.New("no runc binary found: runcr passes this command to runc; install runc v1.4 or set RUNCR_RUNC to its path")
}

// stripCriuFlag drops runcr's own global flags (runcrOnlyFlags, with their
// values) that appear before the subcommand; runc v1.4 has no such flags.
// flags are runcr's global flags: they tell which ones take a value.
func stripCriuFlag(args []string, flags []cli.Flag) []string {
	takesValue := map[string]bool{}
	for _, f := range flags {
		if _, isBool := f.(*cli.BoolFlag); !isBool {
			for _, name := range f.Names() {
				takesValue[name] = true
			}
		}
	}
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			return append(out, args[i:]...) // the subcommand: the rest is its own
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if slices.Contains(runcrOnlyFlags, name) {
			if !hasValue {
				i++
			}
			continue
		}
		out = append(out, a)
		if !hasValue && takesValue[name] && i+1 < len(args) {
			out = append(out, args[i+1])
			i++
		}
	}
	return out
}
