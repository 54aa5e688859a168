package libcheckpoint

import (
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/opencontainers/runc/libcontainer"
)

// lockSourceNetwork makes the network namespace of the source container
// of a committed migration drop every packet but loopback's, so that
// killing its processes sends no RST or FIN to peers whose connections
// now live on the target. It returns the undo, for a namespace that
// outlives the container (one given by path in config.json).
func lockSourceNetwork(c *libcontainer.Container) (func(), error) {
	st, err := c.State()
	if err != nil {
		return nil, err
	}
	ns, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", st.InitProcessPid))
	if err != nil {
		return nil, err
	}
	rules := [][]string{
		{"INPUT", "!", "-i", "lo", "-j", "DROP"},
		{"OUTPUT", "!", "-o", "lo", "-j", "DROP"},
	}
	run := func(action string, rule []string) error {
		for _, tool := range []string{"iptables", "ip6tables"} {
			args := append([]string{"--net=/proc/self/fd/3", tool, "-w", action}, rule...)
			cmd := exec.Command("nsenter", args...)
			cmd.ExtraFiles = []*os.File{ns}
			if out, err := cmd.CombinedOutput(); err != nil && tool == "iptables" {
				return fmt.Errorf("%s %s: %w: %s", tool, strings.Join(rule, " "), err, strings.TrimSpace(string(out)))
			}
		}
		return nil
	}
	for _, r := range rules {
		if err := run("-I", r); err != nil {
			ns.Close()
			return nil, err
		}
	}
	return func() {
		for _, r := range rules {
			_ = run("-D", r)
		}
		ns.Close()
	}, nil
}
