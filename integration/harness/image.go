package harness

import (
	"bytes"
	"context"
	"sync"
	"testing"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/defaults"

	"github.com/teach/containerd-shim-teach-v2/integration/image"
)

// BusyboxImage is the reference the tests run.
const BusyboxImage = image.DefaultName

var (
	busyboxOnce    sync.Once
	busyboxArchive []byte
	busyboxErr     error
)

// BusyboxArchive returns the OCI archive of the test image, built once per
// test binary (it is about 1 MiB, kept in memory).
func BusyboxArchive(t testing.TB) []byte {
	t.Helper()
	busyboxOnce.Do(func() {
		var buf bytes.Buffer
		busyboxErr = image.Write(&buf, BusyboxImage)
		busyboxArchive = buf.Bytes()
	})
	if busyboxErr != nil {
		t.Fatalf("build busybox image (is busybox-static installed? hack/tools.sh does it): %v", busyboxErr)
	}
	return busyboxArchive
}

// ImportBusybox imports the test image into the namespace of ctx and unpacks
// it into the default snapshotter, so containers can be made from it at once.
func ImportBusybox(t testing.TB, ctx context.Context, c *client.Client) client.Image {
	t.Helper()
	imported, err := c.Import(ctx, bytes.NewReader(BusyboxArchive(t)))
	if err != nil {
		t.Fatalf("import busybox image: %v", err)
	}
	if len(imported) != 1 || imported[0].Name != BusyboxImage {
		t.Fatalf("import named %v, want exactly %s", imported, BusyboxImage)
	}
	img := client.NewImage(c, imported[0])
	if err := img.Unpack(ctx, defaults.DefaultSnapshotter); err != nil {
		t.Fatalf("unpack busybox image: %v", err)
	}
	return img
}
