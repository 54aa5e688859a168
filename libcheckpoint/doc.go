// Package libcheckpoint checkpoints and restores OCI containers managed by
// runc's libcontainer, using CRIU. It owns the meaning of every checkpoint
// and restore option, validates them, and maps them, with what a
// checkpoint's manifest adds, onto everything CRIU is given, in one place;
// the runcr command line only parses flags into these types and prints
// results.
//
// A program that imports it calls SetupProcess once, then
// Runtime.Checkpoint, Runtime.Restore and Runtime.CheckHost, each with a
// context: cancelling it stops CRIU and leaves the container as it was
// (a dump already whole completes).
//
// A program that only reads checkpoints imports less: package manifest
// (the manifest and image digests) and package archive (runcr's
// archives) import no CRIU or libcontainer code; package image decodes
// CRIU's images with go-criu's crit.
//
// What the package does to the process that imports it, all of it:
//   - SetupProcess, and only it, changes the environment (PATH for a
//     criu of the caller's choice, CRIU_FAULT, CRIU_CONFIG_FILE), because
//     libcontainer starts criu from PATH with the process's environment;
//     its undo puts the environment back.
//   - CRIU is started from an OS thread of its own, with its own
//     file-system attributes (a 077 umask for a dump) and, where /run is
//     not a tmpfs, its own mount namespace showing runcr's CRIU kernel
//     feature cache; the thread ends when the call returns. specconv's
//     conversion runs in the bundle on another such thread.
//   - A restored container's init is a child of the process (CRIU makes
//     it so). In the foreground, RestoreOptions.Wait waits for it;
//     forwarding signals, subreaping, reaping and copying the container's
//     stdio pipes or pty (RestoredContainer) are the caller's; the
//     library copies nothing.
//   - When a context ends, runcr's end of its connection to that CRIU
//     (found through sock_diag) is shut down, and CRIU and its children
//     are killed 5 seconds later if still there; nothing else the process
//     holds is touched.
//   - Files under /run/runcr: per-boot probe caches, the kernel feature
//     cache (a small tmpfs mounted at /run/runcr/kdat) and the nftables
//     lock configuration.
//   - libcontainer itself keeps descriptors of the cgroup root and of /
//     open once it has used them, and logs through logrus's standard
//     logger, as runcr does.
package libcheckpoint
