package libcheckpoint

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

// digestedFixture is imageFixture with the manifest's digests recorded,
// as a checkpoint records them.
func digestedFixture(t *testing.T) (dir, config string) {
	t.Helper()
	dir, config, _ = imageFixture(t)
	m, err := ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	if m.Images, err = DigestImages(dir); err != nil {
		t.Fatal(err)
	}
	for _, f := range m.Images {
		m.ImagesSize += f.Size
	}
	if err := writeManifest(dir, m); err != nil {
		t.Fatal(err)
	}
	return dir, config
}

// flipPage inverts 4096 bytes in the middle of dir/name.
func flipPage(t *testing.T, dir, name string) {
	t.Helper()
	path := filepath.Join(dir, name)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := len(data) / 2; i < len(data)/2+4096 && i < len(data); i++ {
		data[i] ^= 0xff
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestDigestImages(t *testing.T) {
	dir, _ := digestedFixture(t)
	m, err := ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"inventory.img", "core-1.img", "pages-1.img", "empty.img"} {
		if f, ok := m.Images[name]; !ok || len(f.XXH64) != 16 {
			t.Errorf("%s: %+v, want a 16-digit digest", name, f)
		}
	}
	for _, name := range []string{"dump.log", ManifestFile} {
		if _, ok := m.Images[name]; ok {
			t.Errorf("%s is digested; logs and the manifest are not images", name)
		}
	}
	if m.ImagesSize != 3<<20+4000+9 {
		t.Errorf("ImagesSize %d", m.ImagesSize)
	}
	if err := VerifyImages(dir, m); err != nil {
		t.Fatalf("intact images: %v", err)
	}
	// A restore's own files do not count.
	for _, name := range []string{"restore.log", "stats-restore"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := VerifyImages(dir, m); err != nil {
		t.Fatalf("with restore's files: %v", err)
	}
	// Images without digests (runc's, older runcr's) pass as before.
	if err := VerifyImages(dir, nil); err != nil {
		t.Fatal(err)
	}
	if err := VerifyImages(dir, &Manifest{}); err != nil {
		t.Fatal(err)
	}
}

// The measured case: 4096 bytes flipped inside pages-1.img restored with
// exit 0 and corrupted memory. Now every damage is refused naming the file.
func TestVerifyImagesRefusesDamage(t *testing.T) {
	cases := []struct {
		name   string
		damage func(t *testing.T, dir string)
		want   string
	}{
		{"4096 bytes flipped in pages-1.img", func(t *testing.T, dir string) { flipPage(t, dir, "pages-1.img") }, "pages-1.img: its content changed"},
		{"truncated core", func(t *testing.T, dir string) { os.Truncate(filepath.Join(dir, "core-1.img"), 10) }, "core-1.img is 10 bytes"},
		{"missing image", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, "inventory.img")) }, "inventory.img is missing"},
		{"added image", func(t *testing.T, dir string) { os.WriteFile(filepath.Join(dir, "pages-2.img"), nil, 0o600) }, "pages-2.img is not among"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir, _ := digestedFixture(t)
			tc.damage(t, dir)
			m, err := ReadManifest(dir)
			if err != nil {
				t.Fatal(err)
			}
			err = VerifyImages(dir, m)
			if !errors.Is(err, ErrDamagedImage) || !strings.Contains(err.Error(), filepath.Join(dir, "")) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrDamagedImage with %q", err, tc.want)
			}
		})
	}
}

// An import checks the digests as it unpacks and leaves nothing behind
// when one differs.
func TestImportRefusesDamagedImages(t *testing.T) {
	dir, config := digestedFixture(t)
	data := exportBytes(t, dir, config, CompressZstd)
	target := t.TempDir()
	m, err := ImportArchive(bytes.NewReader(data), target)
	if err != nil || m.Images == nil {
		t.Fatalf("intact archive: %v, %v", m, err)
	}
	flipPage(t, dir, "pages-1.img")
	data = exportBytes(t, dir, config, CompressZstd)
	target = t.TempDir()
	_, err = ImportArchive(bytes.NewReader(data), target)
	if !errors.Is(err, ErrDamagedImage) || !strings.Contains(err.Error(), "pages-1.img") {
		t.Fatalf("got %v, want ErrDamagedImage naming pages-1.img", err)
	}
	if entries, _ := os.ReadDir(target); len(entries) != 0 {
		t.Errorf("left %d files behind", len(entries))
	}
}

// bombArchive is a zstd tar whose entries are declared (or not) as given
// and whose member "pages-1.img" claims size bytes; only its first MiB
// is there (the import must refuse it from the header).
func bombArchive(t *testing.T, declare map[string]int64, size int64) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, _ := zstd.NewWriter(&buf)
	tw := tar.NewWriter(w)
	if declare != nil {
		var total int64
		for _, n := range declare {
			total += n
		}
		decl := []byte(`{"version":1,"files":{`)
		first := true
		for name, n := range declare {
			if !first {
				decl = append(decl, ',')
			}
			first = false
			decl = append(decl, []byte(`"`+name+`":`+itoa(n))...)
		}
		decl = append(decl, []byte(`},"total":`+itoa(total)+`}`)...)
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: ArchiveSizesFile, Mode: 0o600, Size: int64(len(decl))})
		tw.Write(decl)
	}
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "pages-1.img", Mode: 0o600, Size: size})
	tw.Write(make([]byte, 1<<20))
	tw.Flush()
	w.Close()
	return buf.Bytes()
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// The measured case: a 355 KiB archive with one 10 GiB member of zeros
// wrote 10 GB before it was refused. Now it is refused from the tar
// header, before a byte is written: past the declared sizes, past
// --import-limit, past the free space.
func TestImportBombRefusedBeforeWriting(t *testing.T) {
	const tenGiB = 10 << 30
	cases := []struct {
		name    string
		declare map[string]int64
		limit   string
		want    string
	}{
		{"declared small, member huge", map[string]int64{"pages-1.img": 4096, ManifestFile: 100}, "", "declares 4096"},
		{"member not declared", map[string]int64{"core-1.img": 4096, ManifestFile: 100}, "", "is not among the entries"},
		{"undeclared, past --import-limit", nil, "1G", "--import-limit 1G"},
		{"declared past --import-limit", map[string]int64{"pages-1.img": tenGiB, ManifestFile: 100}, "1G", "--import-limit 1G"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			target := t.TempDir()
			start := time.Now()
			_, err := ImportArchiveLimit(bytes.NewReader(bombArchive(t, tc.declare, tenGiB)), target, tc.limit)
			if !errors.Is(err, ErrBadArchive) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrBadArchive with %q", err, tc.want)
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("took %v", d)
			}
			if entries, _ := os.ReadDir(target); len(entries) != 0 {
				t.Errorf("left %d files behind", len(entries))
			}
		})
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"4096": 4096, "1K": 1024, "2M": 2 << 20, "3G": 3 << 30, "1T": 1 << 40, "5GiB": 5 << 30, "7GB": 7 << 30} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "-1", "G", "1X", "99999999999T"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) accepted", in)
		}
	}
	if err := (&RestoreOptions{ImportLimit: "lots"}).Validate(); !errors.Is(err, ErrInvalidOption) || !strings.Contains(err.Error(), "--import-limit") {
		t.Errorf("Validate: %v", err)
	}
}

// inspect --verify: a directory's and an archive's images against their
// digests; a damaged one is named, images without digests fail.
func TestInspectVerify(t *testing.T) {
	dir := t.TempDir()
	craftCheckpoint(t, dir, "/data/log.txt")
	if _, err := InspectPathWith(dir, InspectOptions{Verify: true}); err == nil || !strings.Contains(err.Error(), "no image digests") {
		t.Fatalf("without a manifest: %v", err)
	}
	m := &Manifest{Version: ManifestVersion, State: ManifestComplete, ContainerID: "ct1", Created: time.Now().UTC()}
	var err error
	if m.Images, err = DigestImages(dir); err != nil {
		t.Fatal(err)
	}
	if err := writeManifest(dir, m); err != nil {
		t.Fatal(err)
	}
	ins, err := InspectPathWith(dir, InspectOptions{Verify: true})
	if err != nil || ins.Verified == nil || ins.Verified.Files != len(m.Images) || ins.Verified.Algorithm != "xxh64" {
		t.Fatalf("intact: %+v, %v", ins, err)
	}
	archive := filepath.Join(t.TempDir(), "ck.tar.zst")
	f, err := os.Create(archive)
	if err != nil {
		t.Fatal(err)
	}
	if err := ExportArchive(dir, "", f, CompressZstd); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if ins, err := InspectPathWith(archive, InspectOptions{Verify: true}); err != nil || ins.Verified == nil {
		t.Fatalf("archive: %+v, %v", ins, err)
	}
	flipPage(t, dir, "pages-1.img")
	if _, err := InspectPathWith(dir, InspectOptions{Verify: true}); !errors.Is(err, ErrDamagedImage) || !strings.Contains(err.Error(), "pages-1.img") {
		t.Fatalf("damaged: %v", err)
	}
	// Without --verify, inspect reads it as before.
	if _, err := InspectPathWith(dir, InspectOptions{}); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkDigestImages: hashing (as a checkpoint does) and verifying (as
// a restore does) 1 GiB of images on tmpfs (/dev/shm when there is one);
// tests/bench's BenchmarkDigest sets the same against whole checkpoints
// and restores.
func BenchmarkDigestImages(b *testing.B) {
	base := ""
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		base = "/dev/shm"
	}
	dir, err := os.MkdirTemp(base, "runcr-digest-bench-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	page := make([]byte, 1<<20)
	for i := range page {
		page[i] = byte(i * 7)
	}
	f, err := os.Create(filepath.Join(dir, "pages-1.img"))
	if err != nil {
		b.Fatal(err)
	}
	for i := range 1024 {
		page[0] = byte(i)
		if _, err := f.Write(page); err != nil {
			b.Fatal(err)
		}
	}
	f.Close()
	for _, n := range []string{"core-1.img", "mm-1.img", "pagemap-1.img", "inventory.img"} {
		os.WriteFile(filepath.Join(dir, n), page[:4096], 0o600)
	}
	m := &Manifest{}
	b.SetBytes(1<<30 + 4*4096)
	b.Run("hash", func(b *testing.B) {
		b.SetBytes(1<<30 + 4*4096)
		for b.Loop() {
			if m.Images, err = DigestImages(dir); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("verify", func(b *testing.B) {
		b.SetBytes(1<<30 + 4*4096)
		for b.Loop() {
			if err := VerifyImages(dir, m); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// An archive unpacked by tar, the size declaration and config.json
// included, is an image directory whose digests check.
func TestTarUnpackedArchiveVerifies(t *testing.T) {
	dir, config := digestedFixture(t)
	tr := tar.NewReader(bytes.NewReader(exportBytes(t, dir, config, CompressNone)))
	target := t.TempDir()
	for {
		hdr, err := tr.Next()
		if err != nil {
			break
		}
		data := make([]byte, hdr.Size)
		if _, err := io.ReadFull(tr, data); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(target, hdr.Name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(filepath.Join(target, ArchiveSizesFile)); err != nil {
		t.Fatal(err)
	}
	m, err := ReadManifest(target)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyImages(target, m); err != nil {
		t.Fatal(err)
	}
}
