// Command checkpoint-restore is an example of a Go program that embeds
// libcheckpoint: it checkpoints a running container into a directory and
// restores it from there, detached, under the same id, as
// `runcr checkpoint` followed by `runcr restore -d` would.
//
//	checkpoint-restore -root /run/runc -bundle /path/to/bundle -images /tmp/ck ID
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/runcr/runcr/libcheckpoint"
)

func main() {
	root := flag.String("root", "/run/runc", "the runtime's state directory")
	bundle := flag.String("bundle", ".", "the container's bundle, to restore it from")
	images := flag.String("images", "checkpoint", "directory for the checkpoint images")
	criu := flag.String("criu", "", "criu binary (default: criu on PATH)")
	timeout := flag.Duration("timeout", 10*time.Minute, "how long to wait on CRIU")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: checkpoint-restore [flags] CONTAINER-ID")
		os.Exit(2)
	}
	if err := run(*root, *bundle, *images, *criu, *timeout, flag.Arg(0)); err != nil {
		fmt.Fprintln(os.Stderr, "checkpoint-restore:", err)
		os.Exit(1)
	}
}

func run(root, bundle, images, criu string, timeout time.Duration, id string) error {
	// Cancelled on Ctrl-C or by the deadline: before CRIU has finished
	// the dump, the container is left running as it was.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	// The one process-wide set-up: libcontainer starts criu from PATH
	// with this process's environment.
	rt := &libcheckpoint.Runtime{Root: root, CriuPath: criu}
	undo, err := libcheckpoint.SetupProcess(ctx, libcheckpoint.ProcessOptions{
		CriuPath:                criu,
		LockNetworkWithNftables: rt.LocksNetwork(id),
	})
	if err != nil {
		return err
	}
	defer undo()

	opts := libcheckpoint.NewCheckpointOptions()
	opts.ImagePath = images
	res, err := rt.Checkpoint(ctx, id, opts)
	if err != nil {
		return err
	}
	fmt.Printf("checkpointed %s into %s (CRIU %s)\n", id, res.ImagePath, res.Manifest.Versions.CRIU)

	// The restored container's stdio are this program's (Stdio unset).
	_, err = rt.Restore(ctx, id, libcheckpoint.RestoreOptions{
		CommonOptions: libcheckpoint.CommonOptions{ImagePath: images},
		Bundle:        bundle,
		Detach:        true,
	})
	if err != nil {
		return err
	}
	fmt.Printf("restored %s\n", id)
	return nil
}
