package libcheckpoint

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// A container run with --preserve-fds holds descriptors 3, 4, ... that its
// caller (Podman, systemd socket activation) handed in: pipes and sockets
// whose other end is outside the container. CRIU dumps such a pipe as a
// plain pipe and, on restore, makes a new one nobody outside holds, unless
// told with inherit-fd which descriptor of its own stands for it. So the
// checkpoint records what the init's descriptors were, and restore
// --preserve-fds N hands CRIU the caller's new descriptors 3..N+2 for them.

// maxRecordedFDs bounds how many of the init's descriptors a manifest lists.
const maxRecordedFDs = 64

// externalFDs lists the pipes and sockets among process pid's descriptors
// from 3 on, as CRIU names them ("pipe:[INODE]", "socket:[INODE]").
func externalFDs(pid int) map[int]string {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var fds []int
	for _, e := range entries {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd >= 3 {
			fds = append(fds, fd)
		}
	}
	sort.Ints(fds)
	out := map[int]string{}
	for _, fd := range fds {
		if len(out) == maxRecordedFDs {
			break
		}
		link, err := os.Readlink(filepath.Join(dir, strconv.Itoa(fd)))
		if err == nil && (strings.HasPrefix(link, "pipe:[") || strings.HasPrefix(link, "socket:[")) {
			out[fd] = link
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// inheritPreservedFDs duplicates with dup the caller's descriptors
// 3..3+n-1 that stand for a recorded pipe or socket, to numbers CRIU
// inherits (dupHigh), and returns the CRIU configuration lines naming
// them and a function closing the duplicates once CRIU is done.
func inheritPreservedFDs(recorded map[int]string, n int, dup func(int) (int, error)) (lines []string, closeAll func(), err error) {
	var dups []int
	closeAll = func() {
		for _, fd := range dups {
			unix.Close(fd)
		}
	}
	for fd := 3; fd < 3+n; fd++ {
		key, ok := recorded[fd]
		if !ok {
			continue
		}
		d, err := dup(fd)
		if err != nil {
			closeAll()
			return nil, func() {}, invalid("preserve-fds", "file descriptor %d: %v", fd, err)
		}
		dups = append(dups, d)
		lines = append(lines, fmt.Sprintf("inherit-fd fd[%d]:%s", d, key))
	}
	return lines, closeAll, nil
}
