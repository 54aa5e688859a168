// Command timeline turns `perf script` output of the sched_process_fork,
// sched_process_exec and sched_process_exit tracepoints into the process
// tree of one command: when each process was forked, what it executed,
// when it exited, relative to the command's own exec. With several runs
// (one file each) it prints the median of every process's times, matched
// by their place in the tree.
//
// Usage: timeline -exec PATH perf-script.txt[:PID]...
//
// -exec names the command's binary: its first exec in each file is the
// root, or its exec by PID when the file name is followed by :PID (other
// processes may run the same binary meanwhile). Threads (forked tasks that never exec and don't end their thread
// group) are left out.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
)

type proc struct {
	pid        int
	parent     *proc
	children   []*proc
	fork, exec float64 // seconds, absolute; exec < 0 when none
	exit       float64 // < 0 when not seen
	file       string
	comm       string
	groupDead  bool
	label      string
}

var (
	lineRE = regexp.MustCompile(`^\s*(.+?)\s+(\d+)\s+\[\d+\]\s+([\d.]+):\s+sched:(sched_process_\w+):\s+(.*)$`)
	kvRE   = regexp.MustCompile(`(\w+)=(\S+)`)
)

func main() {
	root := flag.String("exec", "", "binary whose first exec is the root")
	flag.Parse()
	if *root == "" || flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: timeline -exec PATH perf-script.txt[:PID]...")
		os.Exit(2)
	}
	type span struct{ start, end []float64 }
	spans := map[string]*span{}
	var order []string
	var ownMs []float64
	for i, name := range flag.Args() {
		r, err := parse(name, *root)
		if err != nil {
			fmt.Fprintln(os.Stderr, "timeline:", err)
			os.Exit(1)
		}
		if flag.NArg() == 1 || i == 0 {
			fmt.Printf("# first run: %s\n", name)
			printTree(r, r.exec, 0)
			fmt.Println()
		}
		ownMs = append(ownMs, ownTime(r)*1000)
		walk(r, func(p *proc) {
			s := spans[p.label]
			if s == nil {
				s = &span{}
				spans[p.label] = s
				order = append(order, p.label)
			}
			s.start = append(s.start, (p.fork-r.exec)*1000)
			end := p.exit
			if end < 0 {
				end = p.fork
			}
			s.end = append(s.end, (end-r.exec)*1000)
		})
	}
	if flag.NArg() > 1 {
		fmt.Printf("# medians over %d runs (ms from the root's exec)\n", flag.NArg())
		fmt.Printf("%-52s %5s %9s %9s %9s\n", "process", "runs", "start", "end", "duration")
		for _, l := range order {
			s := spans[l]
			durs := make([]float64, len(s.start))
			for i := range s.start {
				durs[i] = s.end[i] - s.start[i]
			}
			fmt.Printf("%-52s %5d %9.1f %9.1f %9.1f\n", l, len(s.start), median(s.start), median(s.end), median(durs))
		}
	}
	fmt.Printf("# root process alone (its lifetime minus time any child process was alive): median %.1f ms\n", median(ownMs))
}

func parse(arg, root string) (*proc, error) {
	name, pidStr, _ := strings.Cut(arg, ":")
	rootPid := -1
	if pidStr != "" {
		var err error
		if rootPid, err = strconv.Atoi(pidStr); err != nil {
			return nil, fmt.Errorf("%s: bad pid", arg)
		}
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	procs := map[int]*proc{}
	var rootP *proc
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		m := lineRE.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		ts, _ := strconv.ParseFloat(m[3], 64)
		kv := map[string]string{}
		for _, x := range kvRE.FindAllStringSubmatch(m[5], -1) {
			kv[x[1]] = x[2]
		}
		switch m[4] {
		case "sched_process_exec":
			pid, _ := strconv.Atoi(kv["pid"])
			if rootP == nil {
				if kv["filename"] == root && (rootPid < 0 || pid == rootPid) {
					rootP = &proc{pid: pid, fork: ts, exec: ts, exit: -1, file: kv["filename"]}
					procs = map[int]*proc{pid: rootP}
				}
				continue
			}
			if p := procs[pid]; p != nil && p.exit < 0 {
				if p.exec < 0 {
					p.exec = ts
				}
				p.file = kv["filename"]
			}
		case "sched_process_fork":
			if rootP == nil {
				continue
			}
			ppid, _ := strconv.Atoi(kv["pid"])
			cpid, _ := strconv.Atoi(kv["child_pid"])
			parent := procs[ppid]
			if parent == nil || parent.exit >= 0 {
				continue
			}
			// A thread's fork events belong to its process: go up to the
			// nearest task that is a process of its own.
			for parent.parent != nil && isThreadCandidate(parent) {
				parent = parent.parent
			}
			c := &proc{pid: cpid, parent: parent, fork: ts, exec: -1, exit: -1, comm: kv["child_comm"]}
			parent.children = append(parent.children, c)
			procs[cpid] = c
		case "sched_process_exit":
			if rootP == nil {
				continue
			}
			pid, _ := strconv.Atoi(kv["pid"])
			if p := procs[pid]; p != nil && p.exit < 0 {
				p.exit = ts
				p.groupDead = kv["group_dead"] == "true"
			}
		}
	}
	if rootP == nil {
		return nil, fmt.Errorf("%s: no exec of %s", name, root)
	}
	prune(rootP)
	rootP.label = procName(rootP)
	labels(rootP)
	return rootP, sc.Err()
}

// isThreadCandidate: not exec'd, and (when known) did not end its group.
func isThreadCandidate(p *proc) bool {
	return p.exec < 0 && (p.exit < 0 || !p.groupDead)
}

// prune drops threads, keeping their forks (already attached to the
// process above them).
func prune(p *proc) {
	var keep []*proc
	for _, c := range p.children {
		prune(c)
		if c.exec < 0 && c.exit >= 0 && !c.groupDead && len(c.children) == 0 {
			continue
		}
		if c.exec < 0 && c.exit < 0 && len(c.children) == 0 {
			continue // a thread still alive at the end of the trace
		}
		if c.exec < 0 && len(c.children) == 0 && p.exit >= 0 && c.exit >= p.exit-0.001 {
			// The last thread of a process to exit ends its group: it
			// goes when (or just after) the task it was forked from.
			continue
		}
		keep = append(keep, c)
	}
	p.children = keep
}

func procName(p *proc) string {
	if p.file != "" {
		return filepath.Base(p.file)
	}
	return p.comm + "(fork)"
}

func labels(p *proc) {
	seen := map[string]int{}
	for _, c := range p.children {
		n := procName(c)
		seen[n]++
		c.label = fmt.Sprintf("%s > %s#%d", p.label, n, seen[n])
		labels(c)
	}
}

func walk(p *proc, f func(*proc)) {
	f(p)
	for _, c := range p.children {
		walk(c, f)
	}
}

func printTree(p *proc, t0 float64, depth int) {
	end := "    ?"
	dur := "    ?"
	if p.exit >= 0 {
		end = fmt.Sprintf("%7.1f", (p.exit-t0)*1000)
		dur = fmt.Sprintf("%7.1f", (p.exit-p.fork)*1000)
	}
	execAt := ""
	if p.exec >= 0 && p.parent != nil {
		execAt = fmt.Sprintf(" (exec +%.1f)", (p.exec-p.fork)*1000)
	}
	fmt.Printf("%7.1f %s %s ms  %s%s%s\n", (p.fork-t0)*1000, end, dur, strings.Repeat("  ", depth), procName(p), execAt)
	for _, c := range p.children {
		printTree(c, t0, depth+1)
	}
}

// ownTime is the root's lifetime minus the union of its direct
// children's lifetimes: time the runtime was not waiting on a child.
func ownTime(r *proc) float64 {
	if r.exit < 0 {
		return 0
	}
	type iv struct{ a, b float64 }
	var ivs []iv
	for _, c := range r.children {
		e := c.exit
		if e < 0 {
			e = r.exit
		}
		ivs = append(ivs, iv{c.fork, e})
	}
	sort.Slice(ivs, func(i, j int) bool { return ivs[i].a < ivs[j].a })
	covered, curA, curB := 0.0, -1.0, -1.0
	for _, x := range ivs {
		if x.a > curB {
			covered += curB - curA
			curA, curB = x.a, x.b
		} else if x.b > curB {
			curB = x.b
		}
	}
	covered += curB - curA
	return (r.exit - r.exec) - covered
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
