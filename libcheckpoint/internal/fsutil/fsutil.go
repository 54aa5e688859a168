// Package fsutil holds the file helpers every part of libcheckpoint
// shares: the one atomic file writer, and an open that refuses anything
// but a regular file. It imports nothing beyond the standard library.
package fsutil

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// PendingFile is a file written beside its final path, under a hidden
// temporary name, and put in place whole by Commit or removed by Abort:
// a reader of the path sees the old file or the new one, never a part.
// It is the library's one way to write a file another process may read.
type PendingFile struct {
	*os.File
	path string
}

// CreatePending starts a PendingFile for path, with mode perm.
func CreatePending(path string, perm os.FileMode) (*PendingFile, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return nil, err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	return &PendingFile{File: f, path: path}, nil
}

// Commit syncs the file, renames it to its path and syncs the directory;
// on failure the file is removed and the path left as it was.
func (p *PendingFile) Commit() error {
	err := p.Sync()
	if cerr := p.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(p.Name(), p.path)
	}
	if err != nil {
		os.Remove(p.Name())
		return err
	}
	if d, err := os.Open(filepath.Dir(p.path)); err == nil {
		_ = d.Sync() // the rename is done; a directory that can't sync keeps it anyway
		d.Close()
	}
	return nil
}

// Abort removes the file; the path is left as it was.
func (p *PendingFile) Abort() {
	p.Close()
	os.Remove(p.Name())
}

// ReplaceFile replaces path, atomically, with what write puts in it (a
// PendingFile of mode perm).
func ReplaceFile(path string, perm os.FileMode, write func(*os.File) error) error {
	p, err := CreatePending(path, perm)
	if err != nil {
		return err
	}
	if err := write(p.File); err != nil {
		p.Abort()
		return err
	}
	return p.Commit()
}

// OpenRegular opens a file for reading without blocking on a FIFO (a
// hostile directory may hold one under an image's name) and refuses
// anything but a regular file.
func OpenRegular(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("%s is not a regular file (%s)", path, fi.Mode().Type())
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// UnwrapPathError drops the path from a *PathError when the message
// already names it.
func UnwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
