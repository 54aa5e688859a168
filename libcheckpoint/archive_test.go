package libcheckpoint

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/runcr/runcr/libcheckpoint/archive"
	"github.com/runcr/runcr/libcheckpoint/manifest"
)

// imageFixture makes an image directory as a checkpoint leaves it (a few
// CRIU files, 3 MiB of incompressible pages, a complete manifest) and a
// bundle config; it returns both paths and the files' contents by name.
func imageFixture(t testing.TB) (dir, config string, want map[string][]byte) {
	t.Helper()
	base := t.TempDir()
	dir = filepath.Join(base, "images")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	pages := make([]byte, 3<<20)
	rng := rand.NewChaCha8([32]byte{1})
	_, _ = rng.Read(pages)
	want = map[string][]byte{
		"inventory.img": []byte("inventory"),
		"core-1.img":    bytes.Repeat([]byte("core"), 1000),
		"pages-1.img":   pages,
		"empty.img":     {},
		"dump.log":      []byte("(00.000001) Version: 4.2.1 (gitid 0)\n"),
	}
	for name, data := range want {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	m := &Manifest{Version: ManifestVersion, State: ManifestComplete, ContainerID: "ct1", Bundle: "/srv/bundle", Created: time.Now().UTC()}
	if err := manifest.Write(dir, m); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	want[ManifestFile] = data
	config = filepath.Join(base, "config.json")
	want[ArchiveConfigFile] = []byte(`{"ociVersion":"1.2.0","process":{"args":["sh"]}}`)
	if err := os.WriteFile(config, want[ArchiveConfigFile], 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, config, want
}

func exportBytes(t testing.TB, dir, config string, c Compression) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := archive.Export(dir, config, &buf, c); err != nil {
		t.Fatalf("archive.Export(%s): %v", c, err)
	}
	return buf.Bytes()
}

func TestArchiveRoundTrip(t *testing.T) {
	dir, config, want := imageFixture(t)
	for _, c := range []Compression{CompressZstd, CompressGzip, CompressNone, ""} {
		t.Run(string(c), func(t *testing.T) {
			data := exportBytes(t, dir, config, c)
			got, err := DetectCompression(data)
			if wantC := c; err != nil || (wantC != "" && got != wantC) || (wantC == "" && got != CompressZstd) {
				t.Fatalf("DetectCompression = %q, %v; want %q", got, err, c)
			}
			if c != CompressNone && len(data) >= 3<<20+1<<16 {
				t.Logf("%s: %d bytes (pages are incompressible)", c, len(data))
			}
			target := t.TempDir()
			m, err := ImportArchive(bytes.NewReader(data), target)
			if err != nil {
				t.Fatal(err)
			}
			if m.ContainerID != "ct1" || m.State != ManifestComplete || m.Bundle != "/srv/bundle" {
				t.Errorf("manifest %+v", m)
			}
			entries, err := os.ReadDir(target)
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != len(want) {
				t.Errorf("unpacked %d files, want %d", len(entries), len(want))
			}
			for name, content := range want {
				path := filepath.Join(target, name)
				data, err := os.ReadFile(path)
				if err != nil {
					t.Errorf("%s: %v", name, err)
					continue
				}
				if !bytes.Equal(data, content) {
					t.Errorf("%s differs after the round trip", name)
				}
				if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
					t.Errorf("%s has mode %v, want 0600", name, fi.Mode().Perm())
				}
			}
			// The unpacked directory is an image directory restore accepts.
			if m2, err := ReadManifest(target); err != nil || m2.State != ManifestComplete {
				t.Errorf("ReadManifest of the unpacked archive: %v, %v", m2, err)
			}
		})
	}
}

// TestArchiveManifestLast: the manifest is the last entry and the config
// the first, so that a cut-off archive has no manifest.
func TestArchiveManifestLast(t *testing.T) {
	dir, config, _ := imageFixture(t)
	tr := tar.NewReader(bytes.NewReader(exportBytes(t, dir, config, CompressNone)))
	var names []string
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, hdr.Name)
	}
	if len(names) < 4 || names[0] != ArchiveSizesFile || names[1] != ArchiveConfigFile || names[len(names)-1] != ManifestFile {
		t.Errorf("entries %q: want %s, then %s first and %s last", names, ArchiveSizesFile, ArchiveConfigFile, ManifestFile)
	}
}

func TestExportRefuses(t *testing.T) {
	dir, config, _ := imageFixture(t)
	var buf bytes.Buffer
	if err := archive.Export(dir, config, &buf, "lz4"); !errors.Is(err, ErrInvalidOption) || !strings.Contains(err.Error(), "--compress") {
		t.Errorf("compression lz4: %v", err)
	}
	if err := os.Symlink("../pre", filepath.Join(dir, "parent")); err != nil {
		t.Fatal(err)
	}
	if err := archive.Export(dir, config, &buf, CompressNone); err == nil || !strings.Contains(err.Error(), "parent is not a regular file") {
		t.Errorf("image dir with a parent link: %v", err)
	}
	os.Remove(filepath.Join(dir, "parent"))
	m, _ := ReadManifest(dir)
	m.State = ManifestIncomplete
	if err := manifest.Write(dir, m); err != nil {
		t.Fatal(err)
	}
	if err := archive.Export(dir, config, &buf, CompressNone); !errors.Is(err, ErrIncompleteCheckpoint) {
		t.Errorf("incomplete checkpoint: %v", err)
	}
	os.Remove(filepath.Join(dir, ManifestFile))
	if err := archive.Export(dir, config, &buf, CompressNone); err == nil || !strings.Contains(err.Error(), "has no "+ManifestFile) {
		t.Errorf("no manifest: %v", err)
	}
}

func TestDetectCompression(t *testing.T) {
	dir, config, _ := imageFixture(t)
	for _, c := range []Compression{CompressZstd, CompressGzip, CompressNone} {
		data := exportBytes(t, dir, config, c)
		// The name plays no part: only the bytes are given.
		if got, err := DetectCompression(data[:512]); err != nil || got != c {
			t.Errorf("%s archive detected as %q, %v", c, got, err)
		}
	}
	for _, head := range [][]byte{nil, []byte("PK\x03\x04 a zip file"), bytes.Repeat([]byte{0}, 512), {0x28, 0xb5, 0x2f}} {
		if c, err := DetectCompression(head); !errors.Is(err, ErrBadArchive) {
			t.Errorf("DetectCompression(% x) = %q, %v; want ErrBadArchive", head[:min(len(head), 8)], c, err)
		}
	}
}

// entry is one tar entry of a hand-made archive.
type entry struct {
	hdr  tar.Header
	body []byte
}

func reg(name string, body []byte) entry {
	return entry{tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o600, Size: int64(len(body))}, body}
}

func manifestEntry(t testing.TB, state string) entry {
	data, err := json.Marshal(&Manifest{Version: ManifestVersion, State: state, ContainerID: "ct1", Created: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	return reg(ManifestFile, data)
}

func makeTar(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.hdr
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("%s: %v", h.Name, err)
		}
		if _, err := tw.Write(e.body); err != nil {
			t.Fatalf("%s: %v", h.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func compress(t testing.TB, data []byte, c Compression) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := archive.Compressor(&buf, c)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// sandbox is a directory holding the import target and, next to it, an
// "outside" directory with a secret that hostile archives aim at.
type sandbox struct {
	parent, target, outside, secret string
}

func newSandbox(t testing.TB) sandbox {
	parent := t.TempDir()
	s := sandbox{parent: parent, target: filepath.Join(parent, "target"), outside: filepath.Join(parent, "outside")}
	s.secret = filepath.Join(s.outside, "secret")
	for _, d := range []string{s.target, s.outside} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(s.secret, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	return s
}

// check fails unless the parent holds exactly target, outside and the
// untouched secret, and (after a refusal) target is empty; every file in
// target must be a regular file.
func (s sandbox) check(t testing.TB, refused bool) {
	t.Helper()
	err := filepath.WalkDir(s.parent, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch {
		case path == s.parent || path == s.target || path == s.outside || path == s.secret:
		case filepath.Dir(path) == s.target && !refused && d.Type().IsRegular():
		default:
			t.Errorf("unexpected %s (%v) after the import", path, d.Type())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if data, err := os.ReadFile(s.secret); err != nil || string(data) != "secret" {
		t.Errorf("the file outside the target changed: %q, %v", data, err)
	}
}

func TestImportRefusesHostileArchives(t *testing.T) {
	good := manifestEntry(t, ManifestComplete)
	tests := []struct {
		name    string
		entries func(s sandbox) []entry
		want    string // in the error
	}{
		{"absolute path", func(s sandbox) []entry {
			return []entry{reg(filepath.Join(s.outside, "abs"), []byte("x")), good}
		}, "is an absolute path"},
		{"dot-dot escape", func(sandbox) []entry {
			return []entry{reg("../outside/escaped", []byte("x")), good}
		}, "would escape the target"},
		{"dot-dot inside a path", func(sandbox) []entry {
			return []entry{reg("a/../../outside/escaped", []byte("x")), good}
		}, "would escape the target"},
		{"subdirectory", func(sandbox) []entry {
			return []entry{reg("sub/file", []byte("x")), good}
		}, "is in a subdirectory"},
		{"symlink out, then a file through it", func(s sandbox) []entry {
			return []entry{
				{tar.Header{Typeflag: tar.TypeSymlink, Name: "link", Linkname: s.outside}, nil},
				reg("link/secret", []byte("overwritten")), good,
			}
		}, "is a symbolic link"},
		{"relative symlink out", func(sandbox) []entry {
			return []entry{{tar.Header{Typeflag: tar.TypeSymlink, Name: "link", Linkname: "../outside/secret"}, nil}, good}
		}, "is a symbolic link"},
		{"hardlink out", func(sandbox) []entry {
			return []entry{
				{tar.Header{Typeflag: tar.TypeLink, Name: "hl", Linkname: "../outside/secret"}, nil},
				reg("hl", []byte("overwritten")), good,
			}
		}, "is a hard link"},
		{"device node", func(sandbox) []entry {
			return []entry{{tar.Header{Typeflag: tar.TypeChar, Name: "null", Devmajor: 1, Devminor: 3, Mode: 0o666}, nil}, good}
		}, "is a device node"},
		{"block device", func(sandbox) []entry {
			return []entry{{tar.Header{Typeflag: tar.TypeBlock, Name: "sda", Devmajor: 8, Mode: 0o666}, nil}, good}
		}, "is a device node"},
		{"fifo", func(sandbox) []entry {
			return []entry{{tar.Header{Typeflag: tar.TypeFifo, Name: "fifo", Mode: 0o666}, nil}, good}
		}, "is a fifo"},
		{"directory", func(sandbox) []entry {
			return []entry{{tar.Header{Typeflag: tar.TypeDir, Name: "d/", Mode: 0o755}, nil}, good}
		}, "is a directory"},
		{"duplicate entry", func(sandbox) []entry {
			return []entry{reg("pages-1.img", []byte("first")), reg("pages-1.img", []byte("second")), good}
		}, "would overwrite"},
		{"duplicate manifest", func(sandbox) []entry {
			return []entry{reg(ManifestFile, []byte("{}")), good}
		}, ManifestFile},
		{"missing manifest", func(sandbox) []entry {
			return []entry{reg("inventory.img", []byte("x")), reg("pages-1.img", []byte("y"))}
		}, "no " + ManifestFile},
		{"empty archive", func(sandbox) []entry { return nil }, ""},
		{"incomplete manifest", func(sandbox) []entry {
			return []entry{reg("inventory.img", []byte("x")), manifestEntry(t, ManifestIncomplete)}
		}, "never finished"},
		{"manifest not JSON", func(sandbox) []entry {
			return []entry{reg("inventory.img", []byte("x")), reg(ManifestFile, []byte("not json"))}
		}, "not valid JSON"},
		{"entry after the manifest", func(sandbox) []entry {
			return []entry{good, reg("late.img", []byte("x"))}
		}, "must be the last entry"},
		{"huge size in a header", func(sandbox) []entry {
			return []entry{{tar.Header{Typeflag: tar.TypeReg, Name: "pages-1.img", Size: 1 << 40}, nil}}
		}, "room for"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newSandbox(t)
			var data []byte
			if tc.name == "huge size in a header" {
				// A header that promises a terabyte, followed by nothing.
				var buf bytes.Buffer
				tw := tar.NewWriter(&buf)
				h := tc.entries(s)[0].hdr
				if err := tw.WriteHeader(&h); err != nil {
					t.Fatal(err)
				}
				tw.Flush()
				data = buf.Bytes()
			} else {
				data = makeTar(t, tc.entries(s)...)
			}
			for _, c := range []Compression{CompressNone, CompressZstd} {
				_, err := archive.ImportWithin(bytes.NewReader(compress(t, data, c)), s.target, 64<<20)
				if !errors.Is(err, ErrBadArchive) || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("%s: got %v; want ErrBadArchive with %q", c, err, tc.want)
				} else if tc.want != "" && !strings.Contains(err.Error(), "entry") {
					t.Errorf("%s: %v does not name the entry", c, err)
				}
				s.check(t, true)
			}
		})
	}
}

// TestImportSizeBomb: 256 MiB of zeros compress to a few kB; the cap on
// the unpacked size stops it early, and the partial file is removed.
func TestImportSizeBomb(t *testing.T) {
	s := newSandbox(t)
	const size = 256 << 20
	var buf bytes.Buffer
	w, err := archive.Compressor(&buf, CompressZstd)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(w)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "pages-1.img", Size: size, Mode: 0o600}); err != nil {
		t.Fatal(err)
	}
	zeros := make([]byte, 1<<20)
	for range size >> 20 {
		if _, err := tw.Write(zeros); err != nil {
			t.Fatal(err)
		}
	}
	e := manifestEntry(t, ManifestComplete)
	if err := tw.WriteHeader(&e.hdr); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(e.body); err != nil {
		t.Fatal(err)
	}
	tw.Close()
	w.Close()
	t.Logf("%d MiB of zeros in %d bytes", size>>20, buf.Len())
	_, err = archive.ImportWithin(bytes.NewReader(buf.Bytes()), s.target, 16<<20)
	if !errors.Is(err, ErrBadArchive) || !strings.Contains(err.Error(), "room for") || !strings.Contains(err.Error(), "pages-1.img") {
		t.Errorf("got %v; want a refusal naming pages-1.img and the limit", err)
	}
	s.check(t, true)
	// The same archive is fine where there is room.
	if _, err := archive.ImportWithin(bytes.NewReader(buf.Bytes()), s.target, size+1<<20); err != nil {
		t.Errorf("with room: %v", err)
	}
}

// TestImportTruncatedAndCorrupt: any cut, and a flipped byte in the
// compressed formats, is refused, and nothing stays in the target.
func TestImportTruncatedAndCorrupt(t *testing.T) {
	dir, config, _ := imageFixture(t)
	for _, c := range []Compression{CompressZstd, CompressGzip, CompressNone} {
		data := exportBytes(t, dir, config, c)
		end := len(data)
		if c == CompressNone {
			// A cut after the manifest's data (in its padding or tar's
			// end-of-archive blocks) loses nothing; cut inside it.
			end = bytes.LastIndex(data, []byte(`"container_id"`)) + 1
		}
		for _, cut := range []int{0, 1, 300, 513, len(data) / 3, len(data) / 2, end - 600, end - 1} {
			s := newSandbox(t)
			_, err := archive.ImportWithin(bytes.NewReader(data[:cut]), s.target, 1<<30)
			if !errors.Is(err, ErrBadArchive) {
				t.Errorf("%s cut at %d of %d: got %v, want ErrBadArchive", c, cut, len(data), err)
			}
			s.check(t, true)
		}
		// The tar boundary right before the manifest: the data so far is
		// whole, only the manifest (the commit record) is missing.
		if c == CompressNone {
			i := bytes.LastIndex(data, []byte(ManifestFile+"\x00"))
			s := newSandbox(t)
			_, err := archive.ImportWithin(bytes.NewReader(data[:i]), s.target, 1<<30)
			if !errors.Is(err, ErrBadArchive) || !strings.Contains(err.Error(), "no "+ManifestFile) {
				t.Errorf("cut before the manifest: got %v", err)
			}
			s.check(t, true)
			continue
		}
		for _, at := range []int{len(data) / 2, len(data) - 10} {
			bad := bytes.Clone(data)
			bad[at] ^= 0x55
			s := newSandbox(t)
			if _, err := archive.ImportWithin(bytes.NewReader(bad), s.target, 1<<30); !errors.Is(err, ErrBadArchive) {
				t.Errorf("%s with byte %d flipped: got %v, want ErrBadArchive", c, at, err)
			}
			s.check(t, true)
		}
	}
}

// TestImportIntoNonEmptyTarget: an existing file is never overwritten.
func TestImportIntoNonEmptyTarget(t *testing.T) {
	dir, config, _ := imageFixture(t)
	target := t.TempDir()
	if err := os.WriteFile(filepath.Join(target, "pages-1.img"), []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := ImportArchive(bytes.NewReader(exportBytes(t, dir, config, CompressZstd)), target)
	if !errors.Is(err, ErrBadArchive) || !strings.Contains(err.Error(), "would overwrite") {
		t.Errorf("got %v", err)
	}
	if data, _ := os.ReadFile(filepath.Join(target, "pages-1.img")); string(data) != "mine" {
		t.Errorf("existing file overwritten: %q", data)
	}
	if entries, _ := os.ReadDir(target); len(entries) != 1 {
		t.Errorf("target holds %d files after the refusal, want the 1 it had", len(entries))
	}
}

// TestImportHandMadeTar: `tar -C DIR -c .` of an image directory with the
// manifest last is accepted ("./" prefixes, the "./" entry).
func TestImportHandMadeTar(t *testing.T) {
	s := newSandbox(t)
	data := makeTar(t,
		entry{tar.Header{Typeflag: tar.TypeDir, Name: "./", Mode: 0o700}, nil},
		reg("./inventory.img", []byte("inv")),
		manifestEntry(t, ManifestComplete))
	if _, err := archive.ImportWithin(bytes.NewReader(compress(t, data, CompressGzip)), s.target, 1<<20); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(s.target, "inventory.img")); string(got) != "inv" {
		t.Errorf("inventory.img = %q", got)
	}
	s.check(t, false)
}

func TestCheckpointExportOptions(t *testing.T) {
	ok := []CheckpointOptions{
		{Export: "a.tar.zst"},
		{Export: "a.tar", Compress: CompressNone},
		{Export: "a.tgz", Compress: CompressGzip, CommonOptions: CommonOptions{ImagePath: "/img"}},
		{Export: "a", LeaveRunning: true},
	}
	for _, o := range ok {
		o.StatusFD = -1
		if err := o.Validate(); err != nil {
			t.Errorf("%+v: %v", o, err)
		}
	}
	bad := []struct {
		o    CheckpointOptions
		flag string
	}{
		{CheckpointOptions{Compress: CompressGzip}, "--compress"},
		{CheckpointOptions{Export: "a", Compress: "xz"}, "--compress"},
		{CheckpointOptions{Export: "a", PreDump: true}, "--export"},
		{CheckpointOptions{Export: "a", ParentPath: "../p"}, "--export"},
		{CheckpointOptions{Export: "a", PageServer: "h:1"}, "--export"},
		{CheckpointOptions{Export: "a", CommonOptions: CommonOptions{LazyPages: true}}, "--export"},
		{CheckpointOptions{Export: "dir/"}, "--export"},
	}
	for _, tc := range bad {
		tc.o.StatusFD = -1
		if err := tc.o.Validate(); !errors.Is(err, ErrInvalidOption) || !strings.Contains(err.Error(), tc.flag) {
			t.Errorf("%+v: got %v, want ErrInvalidOption naming %s", tc.o, err, tc.flag)
		}
	}
	for _, o := range []RestoreOptions{
		{Import: "a", CommonOptions: CommonOptions{LazyPages: true}},
		{Import: "a", ParentPath: "../p"},
	} {
		if err := o.Validate(); !errors.Is(err, ErrInvalidOption) || !strings.Contains(err.Error(), "--import") {
			t.Errorf("%+v: got %v, want ErrInvalidOption naming --import", o, err)
		}
	}
	if err := (&RestoreOptions{Import: "a", CommonOptions: CommonOptions{ImagePath: "/x"}}).Validate(); err != nil {
		t.Errorf("--import with --image-path: %v", err)
	}
}

// TestExportFileKeepsImagesOnFailure: an archive that can't be written
// leaves no file at its path, and a temporary image directory is kept.
func TestExportFileKeepsImagesOnFailure(t *testing.T) {
	dir, config, _ := imageFixture(t)
	t.Setenv("TMPDIR", t.TempDir())
	out := filepath.Join(t.TempDir(), "ckpt.tar.zst")
	opts := CheckpointOptions{Export: out}
	e, err := startExport(&opts)
	if err != nil {
		t.Fatal(err)
	}
	if opts.ImagePath == "" || e.tmpImages != opts.ImagePath {
		t.Fatalf("no temporary image directory: %+v", opts)
	}
	if fi, err := os.Stat(opts.ImagePath); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("temporary image directory: %v, %v", fi, err)
	}
	// Pretend CRIU wrote the images, then make the write fail.
	entries, _ := os.ReadDir(dir)
	for _, en := range entries {
		data, _ := os.ReadFile(filepath.Join(dir, en.Name()))
		if err := os.WriteFile(filepath.Join(opts.ImagePath, en.Name()), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	e.tmp.Close() // the write fails: the file is closed
	werr := e.write(opts.ImagePath, config, CompressZstd, nil)
	if werr == nil {
		t.Fatal("write to a closed file succeeded")
	}
	err = &ExportError{Archive: out, ImagePath: opts.ImagePath, ContainerID: "ct1", Err: werr}
	e.finish(err)
	if _, serr := os.Stat(filepath.Join(opts.ImagePath, "pages-1.img")); serr != nil {
		t.Errorf("images not kept: %v", serr)
	}
	if !strings.Contains(err.Error(), "kept in "+opts.ImagePath) || !strings.Contains(err.Error(), "--export "+out) {
		t.Errorf("error %q does not say where the images are", err)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(out), "*")); len(left) != 0 {
		t.Errorf("left next to the archive path: %q", left)
	}

	// Success: the archive is in place, 0600, and the images are gone.
	opts = CheckpointOptions{Export: out}
	if e, err = startExport(&opts); err != nil {
		t.Fatal(err)
	}
	for _, en := range entries {
		data, _ := os.ReadFile(filepath.Join(dir, en.Name()))
		if err := os.WriteFile(filepath.Join(opts.ImagePath, en.Name()), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.write(opts.ImagePath, config, CompressZstd, nil); err != nil {
		t.Fatal(err)
	}
	e.finish(nil)
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("archive: %v, %v", fi, err)
	}
	if _, err := os.Stat(opts.ImagePath); !os.IsNotExist(err) {
		t.Errorf("temporary image directory still there: %v", err)
	}

	// A missing directory is refused up front, naming --export.
	opts = CheckpointOptions{Export: filepath.Join(t.TempDir(), "missing", "x.tar")}
	if _, err := startExport(&opts); !errors.Is(err, ErrInvalidOption) || !strings.Contains(err.Error(), "--export") {
		t.Errorf("missing directory: %v", err)
	}
	if opts.ImagePath != "" {
		t.Errorf("a refused export made an image directory %s", opts.ImagePath)
	}
}
