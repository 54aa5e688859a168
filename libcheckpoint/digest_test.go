package libcheckpoint

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/klauspost/compress/zstd"
	"github.com/zeebo/xxh3"
	"golang.org/x/sys/unix"
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
	if err := writeManifest(dir, m); err != nil {
		t.Fatal(err)
	}
	ins, err := InspectPathWith(dir, InspectOptions{Verify: true})
	if err != nil || ins.Verified == nil || ins.Verified.Files != len(m.Images) || ins.Verified.Algorithm != "xxh3-64m" {
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
		if err := os.WriteFile(filepath.Join(dir, n), page[:4096], 0o600); err != nil {
			b.Fatal(err)
		}
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

// refDigest is the digest by chunks as its definition in digest.go says,
// computed the plain way.
func refDigest(data []byte) string {
	var sums []byte
	for off := 0; off < len(data); off += digestChunk {
		sums = binary.LittleEndian.AppendUint64(sums, xxh3.Hash(data[off:min(len(data), off+digestChunk)]))
	}
	return fmt.Sprintf("xxh3-64m:%016x", xxh3.Hash(sums))
}

// testData is n bytes that differ from page to page.
func testData(n int) []byte {
	data := make([]byte, n)
	x := uint64(0x9e3779b97f4a7c15)
	for i := 0; i+8 <= n; i += 8 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		binary.LittleEndian.PutUint64(data[i:], x)
	}
	return data
}

// The digest is the one its definition gives, read or mapped, whole
// chunks or a last partial one, and as an import hashes the stream.
func TestDigestDefinition(t *testing.T) {
	if got := refDigest(nil); got != "xxh3-64m:2d06800538d394c2" {
		t.Fatalf("empty: %s, want XXH3-64 of nothing", got) // the reference's test vector
	}
	const mib = 1 << 20
	const c = digestChunk
	sizes := []int{0, 1, 4095, 4096, mib - 1, mib, 3*mib + 17, c, c + 1, 2*c - 4096, 2*c + 123}
	dir := t.TempDir()
	all := testData(2*c + 123)
	want := map[string]string{}
	for _, n := range sizes {
		name := fmt.Sprintf("pages-%d.img", n)
		if err := os.WriteFile(filepath.Join(dir, name), all[:n], 0o600); err != nil {
			t.Fatal(err)
		}
		want[name] = refDigest(all[:n])
	}
	got, err := DigestImages(dir)
	if err != nil {
		t.Fatal(err)
	}
	for name, w := range want {
		if got[name].Digest != w {
			t.Errorf("%s: %s, want %s", name, got[name].Digest, w)
		}
		// Streamed in odd pieces, as an import writes it.
		data, _ := os.ReadFile(filepath.Join(dir, name))
		h := newImageHasher()
		for len(data) > 0 {
			k := min(len(data), 1+len(data)%(3*mib+5))
			if _, err := h.Write(data[:k]); err != nil {
				t.Fatal(err)
			}
			data = data[k:]
		}
		if f := h.file(); f.Digest != w || f.Size != got[name].Size {
			t.Errorf("%s streamed: %+v, want %s", name, f, w)
		}
	}
	// With a hole it is read, not mapped, and the same.
	sparse := filepath.Join(dir, "pages-sparse.img")
	f, err := os.Create(sparse)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(all[:4*mib], 0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(all[c:c+4*mib], c); err != nil {
		t.Fatal(err)
	}
	f.Close()
	data, _ := os.ReadFile(sparse)
	hf, _, err := openHashed(dir, "pages-sparse.img", nil)
	if err != nil {
		t.Fatal(err)
	}
	hf.f.Close()
	if fd, _ := os.Open(sparse); fd != nil {
		if hole, _ := unix.Seek(int(fd.Fd()), 0, unix.SEEK_HOLE); hole < int64(len(data)) && hf.mapped {
			t.Errorf("a file with a hole at %d is mapped", hole)
		}
		fd.Close()
	}
	if got, err := DigestImages(dir); err != nil || got["pages-sparse.img"].Digest != refDigest(data) {
		t.Errorf("sparse: %+v, %v; want %s", got["pages-sparse.img"], err, refDigest(data))
	}
}

// Any 4096 bytes flipped are found: at the start, middle and end of a
// chunk, across two, in the last partial chunk, in a small (read) file.
func TestVerifyFindsEveryFlippedPage(t *testing.T) {
	dir := t.TempDir()
	const c = digestChunk
	big, small := testData(2*c+c/2+8192), testData(100000)
	if err := os.WriteFile(filepath.Join(dir, "pages-1.img"), big, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "core-1.img"), small, 0o600); err != nil {
		t.Fatal(err)
	}
	m := &Manifest{}
	var err error
	if m.Images, err = DigestImages(dir); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		file string
		off  int64
	}{
		{"pages-1.img", 0},
		{"pages-1.img", c/2 + 1234},
		{"pages-1.img", c - 4096},
		{"pages-1.img", c - 2048}, // across the first two chunks
		{"pages-1.img", c},
		{"pages-1.img", 2*c + 4096},
		{"pages-1.img", 2*c + c/2 + 8192 - 4096}, // the end of the last, partial chunk
		{"core-1.img", 0},
		{"core-1.img", 100000 - 4096},
	}
	for _, tc := range cases {
		path := filepath.Join(dir, tc.file)
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		page := make([]byte, 4096)
		if _, err := f.ReadAt(page, tc.off); err != nil {
			t.Fatal(err)
		}
		flipped := make([]byte, 4096)
		for i := range page {
			flipped[i] = page[i] ^ 0xff
		}
		if _, err := f.WriteAt(flipped, tc.off); err != nil {
			t.Fatal(err)
		}
		err = VerifyImages(dir, m)
		if !errors.Is(err, ErrDamagedImage) || !strings.Contains(err.Error(), path+": its content changed") {
			t.Errorf("%s flipped at %d: %v", tc.file, tc.off, err)
		}
		// One bit is found too.
		if _, err := f.WriteAt(page, tc.off); err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt([]byte{page[7] ^ 0x10}, tc.off+7); err != nil {
			t.Fatal(err)
		}
		if err := VerifyImages(dir, m); !errors.Is(err, ErrDamagedImage) {
			t.Errorf("%s one bit flipped at %d: %v", tc.file, tc.off+7, err)
		}
		if _, err := f.WriteAt(page, tc.off); err != nil {
			t.Fatal(err)
		}
		f.Close()
		if err := VerifyImages(dir, m); err != nil {
			t.Fatalf("restored: %v", err)
		}
	}
	// Two chunks swapped: each intact, in the wrong place.
	swapped := slices.Concat(big[c:2*c], big[:c], big[2*c:])
	if err := os.WriteFile(filepath.Join(dir, "pages-1.img"), swapped, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := VerifyImages(dir, m); !errors.Is(err, ErrDamagedImage) || !strings.Contains(err.Error(), "content changed") {
		t.Errorf("chunks swapped: %v", err)
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
		if unhashed(e.Name()) {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		m.Images[e.Name()] = ImageFile{Size: int64(len(data)), XXH64: fmt.Sprintf("%016x", xxhash.Sum64(data))}
		m.ImagesSize += int64(len(data))
	}
	if err := writeManifest(dir, m); err != nil {
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

// A file truncated while it is mapped: an error naming it, not SIGBUS.
func TestDigestFileShrinksWhileMapped(t *testing.T) {
	const c = digestChunk
	dir := t.TempDir()
	path := filepath.Join(dir, "pages-1.img")
	if err := os.WriteFile(path, testData(2*c+c/2), 0o600); err != nil {
		t.Fatal(err)
	}
	hf, _, err := openHashed(dir, "pages-1.img", nil)
	if err != nil || !hf.mapped {
		t.Fatalf("not mapped: %v", err)
	}
	hf.sums = make([]uint64, 3)
	if err := os.Truncate(path, c+c/4); err != nil {
		t.Fatal(err)
	}
	// Chunk 2 is gone, chunk 1 partly: reading them faults.
	for _, i := range []int{2, 1} {
		if err := hashChunk(hf, i); err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "faulted: the file shrank") {
			t.Errorf("chunk %d: %v", i, err)
		}
	}
	// Chunk 0 is still there; the size changed all the same.
	if err := hashChunk(hf, 0); err != nil {
		t.Errorf("chunk 0: %v", err)
	}
	if err := hf.sameSize(); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("sameSize: %v", err)
	}
	hf.f.Close()
	// As restore meets it: of another size, named.
	if err := os.WriteFile(path, testData(2*c+c/2), 0o600); err != nil {
		t.Fatal(err)
	}
	m := &Manifest{}
	if m.Images, err = DigestImages(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, c+c/4); err != nil {
		t.Fatal(err)
	}
	if err := VerifyImages(dir, m); !errors.Is(err, ErrDamagedImage) || !strings.Contains(err.Error(), fmt.Sprintf("%s is %d bytes", path, c+c/4)) {
		t.Errorf("truncated: %v", err)
	}
}

// Verifying many files, big and small, uses little memory: the big ones
// are mapped, the small ones read through one buffer per worker.
func TestDigestBoundedMemory(t *testing.T) {
	const mib = 1 << 20
	dir := t.TempDir()
	data := testData(64 * mib)
	if err := os.WriteFile(filepath.Join(dir, "pages-1.img"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("core-%d.img", i)), data[:1000*i], 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// A sparse file, read through the buffer.
	f, _ := os.Create(filepath.Join(dir, "pages-2.img"))
	if err := f.Truncate(32 << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	var m Manifest
	var err error
	if err := bounded(t, "hash", func() error { m.Images, err = DigestImages(dir); return err }); err != nil {
		t.Fatal(err)
	}
	if err := bounded(t, "verify", func() error { return VerifyImages(dir, &m) }); err != nil {
		t.Fatal(err)
	}
}
