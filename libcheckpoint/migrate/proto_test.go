package migrate

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestStreamRoundTripAndAbort(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	if err := w.JSON(FrameHello, Hello{Protocol: ProtocolVersion, ID: "x"}); err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("abc"), MaxFrame) // three frames' worth
	s := w.Stream(FrameArchive)
	if _, err := s.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.JSON(FrameAbort, Abort{Step: "dump", Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	r := NewReader(&buf)
	var h Hello
	if err := r.Expect(FrameHello, &h); err != nil || h.ID != "x" {
		t.Fatalf("hello: %v %+v", err, h)
	}
	got, err := io.ReadAll(r.Stream(FrameArchive))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("stream: %v, %d bytes", err, len(got))
	}
	if _, _, err := r.Next(); !errors.Is(err, ErrAborted) {
		t.Fatalf("abort: %v", err)
	}
	if _, _, err := r.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("end: %v", err)
	}
}

func TestStreamCutShort(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	s := w.Stream(FrameFiles)
	_, _ = s.Write([]byte("partial"))
	_ = w.Frame(FrameFiles, []byte("more")) // no end frame
	if _, err := io.ReadAll(NewReader(&buf).Stream(FrameFiles)); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("want ErrUnexpectedEOF, got %v", err)
	}
}

func TestRootfsSync(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(src, "etc/sub"), 0o755))
	must(os.WriteFile(filepath.Join(src, "etc/a"), []byte("hello"), 0o640))
	must(os.WriteFile(filepath.Join(src, "etc/sub/b"), []byte("b"), 0o755))
	must(os.Symlink("a", filepath.Join(src, "etc/link")))
	must(os.WriteFile(filepath.Join(dst, "stale"), []byte("x"), 0o600))
	list, err := List(src)
	must(err)
	root, err := os.OpenRoot(dst)
	must(err)
	defer root.Close()
	need, extra, _, err := Need(list, root)
	must(err)
	if len(extra) != 1 || extra[0] != "stale" {
		t.Fatalf("extra = %v", extra)
	}
	must(RemoveExtra(root, extra))
	var tarBuf bytes.Buffer
	_, err = WriteFiles(&tarBuf, src, need)
	must(err)
	_, err = ReadFiles(&tarBuf, root, 1<<20)
	must(err)
	again, _, matched, err := Need(list, root)
	must(err)
	if len(again) != 0 || matched != len(list) {
		t.Fatalf("after sync: need %v, matched %d of %d", again, matched, len(list))
	}
	if l, _ := os.Readlink(filepath.Join(dst, "etc/link")); l != "a" {
		t.Fatalf("link = %q", l)
	}
	// A listing naming a path outside the rootfs is refused.
	if _, _, _, err := Need([]Entry{{Path: "../x"}}, root); err == nil {
		t.Fatal("../x accepted")
	}
	// So is a tar entry.
	var evil bytes.Buffer
	tw := tar.NewWriter(&evil)
	must(tw.WriteHeader(&tar.Header{Name: "../xa", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1}))
	_, _ = tw.Write([]byte("x"))
	must(tw.Close())
	if _, err := ReadFiles(&evil, root, 1<<20); err == nil || !strings.Contains(err.Error(), "outside the rootfs") {
		t.Fatalf("../xa: %v", err)
	}
	// A symlink planted in the target does not lead a write out.
	must(os.Symlink("/", filepath.Join(dst, "escape")))
	evil.Reset()
	tw = tar.NewWriter(&evil)
	must(tw.WriteHeader(&tar.Header{Name: "escape/tmp/runcr-migrate-test-escape", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1}))
	_, _ = tw.Write([]byte("x"))
	must(tw.Close())
	if _, err := ReadFiles(&evil, root, 1<<20); err == nil {
		t.Fatal("wrote through a symlink out of the rootfs")
	}
	// And more than the limit.
	tarBuf.Reset()
	_, err = WriteFiles(&tarBuf, src, []string{"etc/a"})
	must(err)
	if _, err := ReadFiles(&tarBuf, root, 2); err == nil {
		t.Fatal("limit not enforced")
	}
}
