package main

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/runcr/runcr/libcheckpoint"
)

func testInspection() *libcheckpoint.Inspection {
	return &libcheckpoint.Inspection{
		Dir: "/ckpt", ImageVersion: 2, LSM: "none", PageSize: 4096,
		Processes: []libcheckpoint.InspectedProcess{
			{
				PID: 1, State: "alive", Threads: 1, Comm: "sh", Args: []string{"sh", "-c", "echo a\nb"},
				Memory: libcheckpoint.MemoryUsage{Pages: 2, Bytes: 8192},
			},
			{PID: 5, PPID: 1, Depth: 1, State: "zombie", Threads: 1, Comm: "true"},
		},
		Memory: libcheckpoint.MemoryUsage{Pages: 2, Bytes: 8192, MappedBytes: 3 << 20},
		Files: libcheckpoint.FilesSummary{
			Descriptors: 3, ByKind: map[string]int{"reg": 1, "inetsk": 1, "pipe": 1},
			RegularFiles: []libcheckpoint.OpenFile{{PID: 1, FD: 3, Path: "/data/db"}},
			Sockets: []libcheckpoint.OpenSocket{{
				PID: 1, FD: 4, Kind: "inet", Family: "ipv4", Type: "stream",
				Protocol: "tcp", State: "ESTABLISHED", Local: "10.0.0.2:80", Peer: "10.0.0.1:5000",
			}},
		},
		Namespaces: []libcheckpoint.InspectedNamespace{{Kind: "pid", Own: true}, {Kind: "user"}},
		Dump:       &libcheckpoint.DumpReport{FrozenMs: 12.5, PagesWritten: 2},
	}
}

func TestPrintInspection(t *testing.T) {
	ins := testInspection()
	var out bytes.Buffer
	printInspection(&out, ins)
	text := out.String()
	for _, want := range []string{
		"no manifest: made by runc or an older runcr",
		`sh -c "echo a\nb"`, // one line per process, whatever its arguments
		"  true  -\n",       // a child indented, no command line
		"Memory: 2 pages, 8.0 KiB (8192 bytes); 3.0 MiB mapped",
		"Open files: 3 descriptors (inetsk 1, pipe 1, reg 1)",
		"pid 1 fd 3  /data/db",
		"inet ipv4 stream tcp ESTABLISHED  10.0.0.2:80 -> 10.0.0.1:5000",
		"Namespaces: own: pid; the host's: user",
		"frozen time:    12.50 ms",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("no %q in:\n%s", want, text)
		}
	}

	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ins.Manifest = &libcheckpoint.Manifest{
		State: libcheckpoint.ManifestComplete, ContainerID: "web1", Bundle: "/srv/web",
		Created: created, Completed: created.Add(1500 * time.Millisecond),
		Versions: libcheckpoint.ManifestVersions{Runcr: "v1", CRIU: "4.2.1"},
		Options:  libcheckpoint.ManifestOptions{ImagePath: "/ckpt", LeaveRunning: true, EmptyNamespaces: []string{"network"}},
	}
	out.Reset()
	printInspection(&out, ins)
	for _, want := range []string{
		"Container:   web1", "Bundle:      /srv/web", "2026-01-02T03:04:05Z, took 1.5s (complete)",
		"runcr v1, libcontainer ?, CRIU 4.2.1, kernel ?", "Options:     --leave-running --empty-ns network\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %q in:\n%s", want, out.String())
		}
	}
}

func TestCommandLineIsShort(t *testing.T) {
	long := libcheckpoint.InspectedProcess{Args: []string{"x", strings.Repeat("y", 300)}}
	if got := commandLine(long); len(got) != 100 || !strings.HasSuffix(got, "...") {
		t.Errorf("%d bytes: %q", len(got), got)
	}
}

// Every recorded option shows in inspect's command line (ImagePath is
// where the images are, shown apart): a field added to ManifestOptions
// can't go unshown.
func TestManifestFlagsShowEveryOption(t *testing.T) {
	var o libcheckpoint.ManifestOptions
	v := reflect.ValueOf(&o).Elem()
	want := 0
	for i := range v.NumField() {
		f := v.Field(i)
		if v.Type().Field(i).Name == "ImagePath" {
			continue
		}
		switch f.Kind() {
		case reflect.String:
			f.SetString("x")
		case reflect.Bool:
			f.SetBool(true)
		case reflect.Slice:
			f.Set(reflect.ValueOf([]string{"x"}))
		default:
			t.Fatalf("%s: no test value for kind %v", v.Type().Field(i).Name, f.Kind())
		}
		want++
	}
	if got := manifestFlags(o); len(got) != want {
		t.Errorf("manifestFlags shows %d options, ManifestOptions has %d: %q", len(got), want, got)
	}
}
