package libcheckpoint

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/klauspost/compress/zstd"

	"github.com/runcr/runcr/libcheckpoint/archive"
	"github.com/runcr/runcr/libcheckpoint/manifest"
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
	if err := manifest.Write(dir, m); err != nil {
		t.Fatal(err)
	}
	return dir, config
}

// flipPage inverts 4096 bytes in the middle of dir/name.
func flipPage(t *testing.T, dir, name string) { //nolint:unparam // any image; the tests happen to pick one
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
		if f, ok := m.Images[name]; !ok || len(f.Digest) != len("xxh3-64m:")+16 || !strings.HasPrefix(f.Digest, "xxh3-64m:") || f.XXH64 != "" {
			t.Errorf("%s: %+v, want an xxh3-64m digest", name, f)
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
		{"truncated core", func(t *testing.T, dir string) { _ = os.Truncate(filepath.Join(dir, "core-1.img"), 10) }, "core-1.img is 10 bytes"},
		{"missing image", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, "inventory.img")) }, "inventory.img is missing"},
		{"added image", func(t *testing.T, dir string) { _ = os.WriteFile(filepath.Join(dir, "pages-2.img"), nil, 0o600) }, "pages-2.img is not among"},
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
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: ArchiveSizesFile, Mode: 0o600, Size: int64(len(decl))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(decl); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "pages-1.img", Mode: 0o600, Size: size}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
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
	if err := manifest.Write(dir, m); err != nil {
		t.Fatal(err)
	}
	ins, err := InspectPathWith(dir, InspectOptions{Verify: true})
	if err != nil || ins.Verified == nil || ins.Verified.Files != len(m.Images) || ins.Verified.Algorithm != "xxh3-64m" {
		t.Fatalf("intact: %+v, %v", ins, err)
	}
	archivePath := filepath.Join(t.TempDir(), "ck.tar.zst")
	f, err := os.Create(archivePath)
	if err != nil {
		t.Fatal(err)
	}
	if err := archive.Export(dir, "", f, CompressZstd); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if ins, err := InspectPathWith(archivePath, InspectOptions{Verify: true}); err != nil || ins.Verified == nil {
		t.Fatalf("archivePath: %+v, %v", ins, err)
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

// Manifests written before the digest by chunks record xxh64; they are
// still checked by it, in a directory, as an import and by inspect.
func TestLegacyXXH64Manifest(t *testing.T) {
	dir, config, _ := imageFixture(t)
	m, err := ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	m.Images = map[string]ImageFile{}
	for _, e := range entries {
		if manifest.Unhashed(e.Name()) {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		m.Images[e.Name()] = ImageFile{Size: int64(len(data)), XXH64: fmt.Sprintf("%016x", xxhash.Sum64(data))}
		m.ImagesSize += int64(len(data))
	}
	if err := manifest.Write(dir, m); err != nil {
		t.Fatal(err)
	}
	// As it is on disk: only "size" and "xxh64".
	raw, _ := os.ReadFile(filepath.Join(dir, ManifestFile))
	if bytes.Contains(raw, []byte(`"digest"`)) || !bytes.Contains(raw, []byte(`"xxh64"`)) {
		t.Fatalf("not an old manifest: %s", raw)
	}
	if m, err = ReadManifest(dir); err != nil {
		t.Fatal(err)
	}
	if err := VerifyImages(dir, m); err != nil {
		t.Fatalf("intact: %v", err)
	}
	if v, err := verifyDir(dir); err != nil || v.Algorithm != "xxh64" {
		t.Fatalf("inspect --verify: %+v, %v", v, err)
	}
	data := exportBytes(t, dir, config, CompressZstd)
	if _, err := ImportArchive(bytes.NewReader(data), t.TempDir()); err != nil {
		t.Fatalf("import: %v", err)
	}
	flipPage(t, dir, "pages-1.img")
	err = VerifyImages(dir, m)
	if !errors.Is(err, ErrDamagedImage) || !strings.Contains(err.Error(), "pages-1.img: its content changed (xxh64 ") {
		t.Fatalf("damaged: %v", err)
	}
	data = exportBytes(t, dir, config, CompressZstd)
	target := t.TempDir()
	_, err = ImportArchive(bytes.NewReader(data), target)
	if !errors.Is(err, ErrDamagedImage) || !strings.Contains(err.Error(), "pages-1.img: its content changed (xxh64 ") {
		t.Fatalf("import of damaged: %v", err)
	}
	if entries, _ := os.ReadDir(target); len(entries) != 0 {
		t.Errorf("left %d files behind", len(entries))
	}
	// An entry that records no digest at all is refused, not passed.
	m.Images["core-1.img"] = ImageFile{Size: m.Images["core-1.img"].Size}
	if err := VerifyImages(dir, m); !errors.Is(err, ErrDamagedImage) {
		t.Fatalf("no digest: %v", err)
	}
}

// Damage to a compressed archive that still decompresses (random pages
// are stored raw by zstd, and only the frame's checksum at its end sees
// the change) is a bad archive: the stream is read to its checksum
// before the images are held against their digests.
func TestImportCorruptRawBlockIsBadArchive(t *testing.T) {
	dir, config, _ := imageFixture(t)
	pages := make([]byte, 256<<10)
	rand.New(rand.NewSource(1)).Read(pages)
	if err := os.WriteFile(filepath.Join(dir, "pages-1.img"), pages, 0o600); err != nil {
		t.Fatal(err)
	}
	m, err := ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	if m.Images, err = DigestImages(dir); err != nil {
		t.Fatal(err)
	}
	if err := manifest.Write(dir, m); err != nil {
		t.Fatal(err)
	}
	data := exportBytes(t, dir, config, CompressZstd)
	at := bytes.Index(data, pages[100<<10:100<<10+64])
	if at < 0 {
		t.Fatal("the random pages are not stored raw in the zstd archive")
	}
	data[at+10] ^= 0xff
	_, err = ImportArchive(bytes.NewReader(data), t.TempDir())
	if !errors.Is(err, ErrBadArchive) || errors.Is(err, ErrDamagedImage) {
		t.Fatalf("got %v, want a bad archive (its checksum), not a damaged image", err)
	}
}
