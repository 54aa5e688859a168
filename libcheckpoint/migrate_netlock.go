package libcheckpoint

import (
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/configs"
)

// netLock is the source container's network namespace made to drop every
// packet but loopback's, from before the final dump to the source's end:
// once CRIU has read its TCP sockets (and, with --leave-running, let them
// go), nothing the peers send may be acknowledged here, or it would be
// lost to the target, and killing the source must send them no RST or
// FIN: their connections live on the target.
type netLock struct {
	ns *os.File
	// Path is the namespace's path when it outlives the container (given
	// by path in config.json); "" for the container's own.
	Path string
}

var netLockRules = [][]string{
	{"INPUT", "!", "-i", "lo", "-j", "DROP"},
	{"OUTPUT", "!", "-o", "lo", "-j", "DROP"},
}

// lockSourceNetwork locks the network namespace of container c.
func lockSourceNetwork(c *libcontainer.Container) (*netLock, error) {
	st, err := c.State()
	if err != nil {
		return nil, err
	}
	ns, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", st.InitProcessPid))
	if err != nil {
		return nil, err
	}
	nss := c.Config().Namespaces
	l := &netLock{ns: ns, Path: nss.PathOf(configs.NEWNET)}
	for i, r := range netLockRules {
		if err := l.run("-I", r); err != nil {
			for _, done := range netLockRules[:i] {
				_ = l.run("-D", done)
			}
			ns.Close()
			return nil, err
		}
	}
	return l, nil
}

// run adds (-I) or deletes (-D) one rule, for IPv4 (which must work) and
// IPv6 (where the host may have no ip6tables).
func (l *netLock) run(action string, rule []string) error {
	for _, tool := range []string{"iptables", "ip6tables"} {
		args := append([]string{"--net=/proc/self/fd/3", tool, "-w", action}, rule...)
		cmd := exec.Command("nsenter", args...)
		cmd.ExtraFiles = []*os.File{l.ns}
		if out, err := cmd.CombinedOutput(); err != nil && tool == "iptables" {
			return fmt.Errorf("nsenter %s %s %s: %w: %s", tool, action, strings.Join(rule, " "), err, strings.TrimSpace(string(out)))
		}
	}
	return nil
}

// unlock removes the rules: the source runs on (a rollback).
func (l *netLock) unlock() {
	if l == nil {
		return
	}
	for _, r := range netLockRules {
		_ = l.run("-D", r)
	}
	l.ns.Close()
}

// keep leaves the rules in place and lets go of the namespace: after the
// commit, the source's address belongs to the target.
func (l *netLock) keep() {
	if l != nil {
		l.ns.Close()
	}
}

// keptNote says what a namespace that outlives the source holds.
func (l *netLock) keptNote() string {
	return fmt.Sprintf("the source's network namespace %s outlives the container and still drops every packet but loopback's, "+
		"so that its addresses, now the target's, send the migrated connections no resets: "+
		"remove that namespace or its addresses, or undo the lock with `nsenter --net=%s iptables -D INPUT ! -i lo -j DROP` and `... -D OUTPUT ! -o lo -j DROP` (ip6tables too)",
		l.Path, l.Path)
}
