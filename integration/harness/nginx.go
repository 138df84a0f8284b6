package harness

import (
	"bytes"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/teach/containerd-shim-teach-v2/integration/image"
)

// DockerNginx is how Docker names the nginx image once loaded.
const DockerNginx = "nginx:teach"

var (
	nginxOnce    sync.Once
	nginxArchive []byte
	nginxErr     error
)

// NginxArchive returns the OCI archive of an nginx image unpacked from
// Debian's packages, which `hack/tools.sh all` downloads; built once per
// test binary.
func NginxArchive(t testing.TB) []byte {
	t.Helper()
	root, err := toolsRoot()
	if err != nil {
		t.Fatal(err)
	}
	debs := filepath.Join(root, "nginx-debs")
	if _, err := os.Stat(filepath.Join(debs, ".done")); err != nil {
		t.Fatalf("the nginx packages are missing: run hack/tools.sh all (make walkthrough does): %v", err)
	}
	nginxOnce.Do(func() {
		var buf bytes.Buffer
		nginxErr = image.WriteNginx(&buf, debs, "docker.io/library/"+DockerNginx)
		nginxArchive = buf.Bytes()
	})
	if nginxErr != nil {
		t.Fatalf("build the nginx image: %v", nginxErr)
	}
	return nginxArchive
}
