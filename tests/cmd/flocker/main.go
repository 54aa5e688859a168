// Command flocker takes an exclusive flock(2) on a file and holds it until
// killed. Debian's busybox has no flock applet; the integration tests copy
// this static binary into the container to hold a lock across checkpoint
// and restore.
package main

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: flocker FILE")
		os.Exit(2)
	}
	f, err := os.OpenFile(os.Args[1], os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, "flocker:", err)
		os.Exit(1)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		fmt.Fprintln(os.Stderr, "flocker:", err)
		os.Exit(1)
	}
	for {
		_ = unix.Pause() // hold the lock until killed
	}
}
