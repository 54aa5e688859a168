package libcheckpoint

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A dump of a container with a host mount propagated into its rslave
// rootfs fails in CRIU with "unreachable sharing"; the hint says why.
func TestScanLogUnreachableSharing(t *testing.T) {
	log := filepath.Join(t.TempDir(), "dump.log")
	text := "(00.005362) Error (criu/mount.c:1092): mnt: Mount 49 ./probe1 (master_id: 3 shared_id: 0) has unreachable sharing. Try --enable-external-masters.\n" +
		"(00.025519) Error (criu/cr-dump.c:1975): Dumping FAILED.\n"
	if err := os.WriteFile(log, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cause, hint := scanLog(log)
	if !strings.Contains(cause, "has unreachable sharing") {
		t.Errorf("cause = %q, want CRIU's unreachable sharing line", cause)
	}
	if !strings.Contains(hint, "rootfsPropagation") {
		t.Errorf("hint = %q, want the rootfsPropagation advice", hint)
	}
}
