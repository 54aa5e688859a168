package main

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode/utf8"

	"github.com/urfave/cli/v2"

	"github.com/runcr/runcr/libcheckpoint"
)

// maxMatches bounds the matches a memory search prints.
const maxMatches = 1000

// memoryRequest is what inspect's memory flags ask for.
type memoryRequest struct {
	pattern *libcheckpoint.SearchPattern
	// text is the pattern as given, for messages.
	text    string
	regex   bool
	pid     uint32
	context int
	dumpDir string
}

func memoryRequestFrom(c *cli.Context) (memoryRequest, error) {
	var r memoryRequest
	lit, re := c.String("search"), c.String("search-regex")
	switch {
	case c.IsSet("search") && c.IsSet("search-regex"):
		return r, errors.New("--search and --search-regex: give one of them")
	case c.IsSet("search"):
		p, err := libcheckpoint.NewSearchPattern(lit, false)
		if err != nil {
			return r, fmt.Errorf("--search: %w", err)
		}
		r.pattern, r.text = p, lit
	case c.IsSet("search-regex"):
		p, err := libcheckpoint.NewSearchPattern(re, true)
		if err != nil {
			return r, fmt.Errorf("--search-regex: %q is not a regular expression runcr understands (Go's RE2 syntax): %w", re, err)
		}
		r.pattern, r.text, r.regex = p, re, true
	}
	pid := c.Uint("pid")
	if pid > 1<<31 {
		return r, fmt.Errorf("--pid: %d is not a pid", pid)
	}
	r.pid = uint32(pid)
	r.context = c.Int("context")
	if r.context < 0 || r.context > 4096 {
		return r, fmt.Errorf("--context: %d is not between 0 and 4096 bytes", r.context)
	}
	r.dumpDir = c.String("dump-memory")
	if c.IsSet("dump-memory") {
		if r.dumpDir == "" {
			return r, errors.New("--dump-memory: give the directory to write the memory into")
		}
		if r.pid == 0 {
			return r, errors.New("--dump-memory: say whose memory with --pid N (runcr inspect lists the pids)")
		}
		if r.pattern != nil {
			return r, errors.New("--dump-memory: can't be combined with --search or --search-regex")
		}
	}
	if r.pattern == nil && r.dumpDir == "" {
		for _, f := range []string{"pid", "context"} {
			if c.IsSet(f) {
				return r, fmt.Errorf("--%s: only applies to --search, --search-regex or --dump-memory", f)
			}
		}
	}
	return r, nil
}

// jsonMatch is a match as inspect --format json prints it. The bytes
// are text: invalid UTF-8 shows as U+FFFD.
type jsonMatch struct {
	PID     uint32 `json:"pid"`
	Address string `json:"address"`
	Match   string `json:"match"`
	Before  string `json:"before"`
	After   string `json:"after"`
}

type jsonSearch struct {
	Checkpoint string                         `json:"checkpoint"`
	Pattern    string                         `json:"pattern"`
	Regex      bool                           `json:"regex"`
	Matches    []jsonMatch                    `json:"matches"`
	Truncated  bool                           `json:"truncated"`
	Searched   []libcheckpoint.MemorySearched `json:"searched"`
}

func searchMemory(out io.Writer, ck *libcheckpoint.Checkpoint, r memoryRequest, asJSON bool) error {
	res := jsonSearch{Checkpoint: ck.Path, Pattern: r.text, Regex: r.regex, Matches: []jsonMatch{}}
	n := 0
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	if !asJSON {
		fmt.Fprintln(w, "PID\tADDRESS\tMATCH (with context)")
	}
	searched, err := ck.SearchMemory(r.pid, r.pattern, r.context, func(m libcheckpoint.MemoryMatch) error {
		if n == maxMatches {
			res.Truncated = true
			return libcheckpoint.ErrStopSearch
		}
		n++
		if asJSON {
			res.Matches = append(res.Matches, jsonMatch{
				PID: m.PID, Address: fmt.Sprintf("%#x", m.Address),
				Match: string(m.Match), Before: string(m.Before), After: string(m.After),
			})
			return nil
		}
		fmt.Fprintf(w, "%d\t%#x\t%s[%s]%s\n", m.PID, m.Address, printable(m.Before), printable(m.Match), printable(m.After))
		return nil
	})
	res.Searched = searched
	if asJSON {
		if err != nil {
			return err
		}
		return writeJSON(out, res)
	}
	w.Flush()
	if err != nil {
		return err
	}
	var bytes, missing uint64
	for _, s := range searched {
		bytes += s.Counts.Bytes
		missing += s.Counts.Missing + s.Counts.Lazy
	}
	fmt.Fprintf(out, "%d matches in %s of memory of %d processes", n, humanBytes(bytes), len(searched))
	if res.Truncated {
		fmt.Fprintf(out, " (stopped after %d: narrow the search with --pid or a longer pattern)", maxMatches)
	}
	fmt.Fprintln(out)
	if missing > 0 {
		fmt.Fprintf(out, "%d pages not searched: lazy, or in parent images that are not there\n", missing)
	}
	return nil
}

// printable shows memory bytes on one line: printable ASCII as is, the
// rest escaped as Go does (\x00, \n, ...).
func printable(b []byte) string {
	var sb strings.Builder
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		if r == utf8.RuneError || r < ' ' || r == 0x7f || r == '\\' || r == '[' || r == ']' {
			if r == '\\' || r == '[' || r == ']' {
				sb.WriteByte('\\')
				sb.WriteByte(b[0])
			} else {
				q := strconv.QuoteToASCII(string(b[:size]))
				sb.WriteString(q[1 : len(q)-1])
			}
		} else {
			sb.Write(b[:size])
		}
		b = b[size:]
	}
	return sb.String()
}

type jsonDump struct {
	Checkpoint string                     `json:"checkpoint"`
	PID        uint32                     `json:"pid"`
	Dir        string                     `json:"dir"`
	Files      []string                   `json:"files"`
	Read       libcheckpoint.MemoryCounts `json:"read"`
}

func dumpMemory(out io.Writer, ck *libcheckpoint.Checkpoint, r memoryRequest, asJSON bool) error {
	names, counts, err := ck.DumpMemory(r.pid, r.dumpDir)
	if err != nil {
		return fmt.Errorf("--dump-memory: %w", err)
	}
	if asJSON {
		return writeJSON(out, jsonDump{Checkpoint: ck.Path, PID: r.pid, Dir: r.dumpDir, Files: names, Read: counts})
	}
	for _, n := range names {
		fmt.Fprintln(out, filepath.Join(r.dumpDir, n))
	}
	fmt.Fprintf(out, "pid %d: %d pages (%s) in %d files\n", r.pid, counts.Pages, humanBytes(counts.Bytes), len(names))
	if counts.Missing+counts.Lazy > 0 {
		fmt.Fprintf(out, "%d pages left as holes (zeros): lazy, or in parent images that are not there\n", counts.Missing+counts.Lazy)
	}
	return nil
}

// printProcessDetails prints each process's working directory and, when
// read (--env), environment.
func printProcessDetails(out io.Writer, procs []libcheckpoint.InspectedProcess) {
	var cwd, env bool
	for _, p := range procs {
		cwd = cwd || p.Cwd != ""
		env = env || len(p.Env) > 0
	}
	if cwd {
		fmt.Fprintln(out, "\nWorking directories:")
		w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		for _, p := range procs {
			if p.Cwd != "" {
				fmt.Fprintf(w, "  pid %d\t%s\n", p.PID, p.Cwd)
			}
		}
		w.Flush()
	}
	if env {
		fmt.Fprintln(out, "\nEnvironment:")
		for _, p := range procs {
			if len(p.Env) == 0 {
				continue
			}
			fmt.Fprintf(out, "  pid %d (%s):\n", p.PID, p.Comm)
			for _, v := range p.Env {
				fmt.Fprintf(out, "    %s\n", printable([]byte(v)))
			}
		}
	}
}
