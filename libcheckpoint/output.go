package libcheckpoint

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/runcr/runcr/libcheckpoint/internal/fsutil"
)

// outputTarget says how to write a file the user named without destroying
// what is already there. A regular file (or nothing) is replaced
// atomically: a temporary file beside it, renamed over it; through a
// symlink, the file it points to is replaced and the link kept. Anything
// else that exists, a character or block device, a FIFO or a link to one
// (/dev/null, /dev/stdout), is opened and written through: renaming over
// it would replace the device node itself.
type outputTarget struct {
	// Path is where to rename the finished file: the path given, or the
	// regular file its symlink leads to.
	Path string
	// Through is set when the path must be opened and written through.
	Through bool
}

func resolveOutput(flag, path string) (outputTarget, error) {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if li, lerr := os.Lstat(path); lerr == nil && li.Mode()&fs.ModeSymlink != 0 {
			return outputTarget{}, invalid(flag, "%s is a symbolic link to nothing; remove it or give another path", path)
		}
		return outputTarget{Path: path}, nil
	case err != nil:
		return outputTarget{}, invalid(flag, "%s: %v", path, fsutil.UnwrapPathError(err))
	case fi.IsDir():
		return outputTarget{}, invalid(flag, "%s is a directory; give a file name", path)
	case fi.Mode()&fs.ModeSocket != 0:
		return outputTarget{}, invalid(flag, "%s is a socket, which can't be opened for writing; give a file, a FIFO or a device", path)
	case fi.Mode().IsRegular():
		resolved, err := filepath.EvalSymlinks(path)
		if err != nil {
			return outputTarget{}, invalid(flag, "%s: %v", path, fsutil.UnwrapPathError(err))
		}
		return outputTarget{Path: resolved}, nil
	default:
		return outputTarget{Path: path, Through: true}, nil
	}
}

// openThrough opens an existing non-regular output for writing, as a
// shell's ">" would, without creating or truncating anything.
func openThrough(flag, path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return nil, invalid(flag, "cannot open %s for writing: %v", path, fsutil.UnwrapPathError(err))
	}
	return f, nil
}

// syncIfFile syncs f where that means something: devices and pipes answer
// EINVAL (or ENOTSUP), which is no failure.
func syncIfFile(f *os.File) error {
	if err := f.Sync(); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOTSUP) {
		return fmt.Errorf("syncing %s: %w", f.Name(), err)
	}
	return nil
}
