package libcheckpoint

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/fs"
)

// The environment is read from the dumped memory, the working directory
// from fs-PID.img and files.img.
func TestInspectEnvironmentAndCwd(t *testing.T) {
	dir := t.TempDir()
	craftCheckpoint(t, dir, "/srv/app")
	// pid 1's environment: in its third page (pages-1.img holds 3).
	env := "PATH=/bin\x00MARKER=env-42\x00\x00"
	envStart := uint64(0x10000 + 2*testPage + 8)
	m := mmEntry(0x10000+testPage+100, 0x10000+testPage+100+uint64(len("sh\x00-c\x00echo hi there\x00")), [2]uint64{0x10000, 0x10000 + 8*testPage})
	m.MmEnvStart, m.MmEnvEnd = u64(envStart), u64(envStart+uint64(len(env)))
	writeImage(t, dir, "mm-1.img", "MM", m)
	pages, err := os.ReadFile(filepath.Join(dir, "pages-1.img"))
	if err != nil {
		t.Fatal(err)
	}
	copy(pages[2*testPage+8:], env)
	if err := os.WriteFile(filepath.Join(dir, "pages-1.img"), pages, 0o600); err != nil {
		t.Fatal(err)
	}
	writeImage(t, dir, "fs-1.img", "FS", &fs.FsEntry{CwdId: u32(1), RootId: u32(1)})

	ins, err := Inspect(dir)
	if err != nil {
		t.Fatal(err)
	}
	p := ins.Processes[0]
	if want := []string{"PATH=/bin", "MARKER=env-42"}; !reflect.DeepEqual(p.Env, want) {
		t.Errorf("env %q, want %q", p.Env, want)
	}
	if p.Cwd != "/srv/app" {
		t.Errorf("cwd %q", p.Cwd)
	}
	// pid 7's environment is empty in mm-7.img: nothing read, no
	// warning about it.
	if ins.Processes[1].Env != nil || ins.Processes[1].Cwd != "" {
		t.Errorf("pid 7: %+v", ins.Processes[1])
	}
	for _, w := range ins.Warnings {
		if strings.Contains(w, "environment") {
			t.Errorf("warning %q", w)
		}
	}

	// A working directory files.img doesn't hold is a warning.
	writeImage(t, dir, "fs-1.img", "FS", &fs.FsEntry{CwdId: u32(99), RootId: u32(1)})
	if ins, err = Inspect(dir); err != nil || ins.Processes[0].Cwd != "" || !strings.Contains(strings.Join(ins.Warnings, "\n"), "working directory 99") {
		t.Errorf("missing cwd: %v %+v", err, ins)
	}
}
