package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/runcr/runcr/libcheckpoint"
)

func checkCommand() *cli.Command {
	return &cli.Command{
		Name:        "check",
		Usage:       "report what checkpoint and restore can do on this host",
		Description: "Probes CRIU and the kernel and says, per option, whether it can work here.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "format", Value: "text", Usage: "output format: text or json"},
		},
		Action: func(c *cli.Context) error {
			format := c.String("format")
			if format != "text" && format != "json" {
				return fmt.Errorf("--format: %q is not 'text' or 'json'", format)
			}
			var report *libcheckpoint.HostReport
			rt := runtimeFrom(c)
			err := withCriu(c, rt, "", func(ctx context.Context) (err error) {
				report, err = rt.CheckHost(ctx)
				return err
			})
			if report != nil {
				if format == "json" {
					enc := json.NewEncoder(c.App.Writer)
					enc.SetIndent("", "  ")
					if werr := enc.Encode(report); werr != nil {
						return werr
					}
				} else {
					printReport(c.App.Writer, report)
				}
			}
			return err
		},
	}
}

func printReport(out io.Writer, r *libcheckpoint.HostReport) {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "criu:\t%s %s\n", r.CriuPath, r.CriuVersionText())
	if r.CriuError != "" {
		fmt.Fprintf(w, "criu error:\t%s\n", r.CriuError)
	}
	fmt.Fprintf(w, "cgroups:\t%s: %s\n", r.Cgroup.Mode, r.Cgroup.Meaning)
	nl := r.NetworkLock
	fmt.Fprintf(w, "network lock:\t%s: %s\n", orNone(nl.Backend), nl.Meaning)
	fmt.Fprintf(w, "  iptables:\t%s\n", yesNoWhy(nl.Iptables, nl.IptablesError))
	fmt.Fprintf(w, "  nftables:\t%s\n", yesNoWhy(nl.Nftables, nl.NftablesError))
	fmt.Fprintf(w, "seccomp:\tkernel %s, CRIU dumps filters %s, suspends them %s: %s\n",
		yesNo(r.Seccomp.Kernel), yesNo(r.Seccomp.CriuDumpsFilters), yesNo(r.Seccomp.CriuSuspends), r.Seccomp.Meaning)
	fmt.Fprintf(w, "kernel feature cache:\t%s\n", yesNoWhy(r.KernelFeatureCache != "none", r.KernelFeatureCacheError)+" ("+r.KernelFeatureCache+")")
	bp := "work"
	if !r.HardwareBreakpoints {
		bp = "don't fire (CRIU runs without them)"
	}
	fmt.Fprintf(w, "hardware breakpoints:\t%s\n", bp)
	for _, name := range sortedKeys(r.Features) {
		fmt.Fprintf(w, "feature %s:\t%s\n", name, yesNo(r.Features[name]))
	}
	for _, name := range sortedKeys(r.Options) {
		s := r.Options[name]
		line := yesNo(s.Supported)
		if s.Reason != "" {
			line += " (" + s.Reason + ")"
		}
		fmt.Fprintf(w, "option --%s:\t%s\n", name, line)
	}
	for _, name := range sortedKeys(r.Migration) {
		s := r.Migration[name]
		line := yesNo(s.Supported)
		if s.Reason != "" {
			line += " (" + s.Reason + ")"
		}
		fmt.Fprintf(w, "migrate %s:\t%s\n", name, line)
	}
	for _, a := range r.Advisories {
		fmt.Fprintf(w, "warning:\t%s %s lacks the fix for %s (fixed in %s): %s\n", a.Component, a.Installed, a.ID, a.FixedIn, a.Meaning)
	}
	w.Flush()
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func yesNoWhy(b bool, why string) string {
	if why != "" {
		return yesNo(b) + " (" + why + ")"
	}
	return yesNo(b)
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
