package libcheckpoint

import (
	"os/exec"
	"strings"
	"testing"
)

// TestPurePackagesStayLight: a program that only reads manifests or
// moves archives (a checkpointctl-like tool), or speaks the migration
// protocol, must not link libcontainer, go-criu, cgroups or logrus
// through manifest, archive or migrate.
func TestPurePackagesStayLight(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to list the imports: %v", err)
	}
	out, err := exec.Command(goBin, "list", "-deps", "./manifest", "./archive", "./migrate").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v: %s", err, out)
	}
	heavy := []string{
		"github.com/opencontainers/runc",
		"github.com/checkpoint-restore/go-criu",
		"github.com/opencontainers/cgroups",
		"github.com/sirupsen/logrus",
		"google.golang.org/protobuf",
	}
	for dep := range strings.FieldsSeq(string(out)) {
		for _, h := range heavy {
			if strings.HasPrefix(dep, h) {
				t.Errorf("manifest, archive or migrate imports %s (through %s); keep them pure", h, dep)
			}
		}
	}
}
