package shim

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	"github.com/opencontainers/runtime-spec/specs-go/features"
	"google.golang.org/protobuf/proto"
)

// fakeRunc writes a script that answers `features` with document and
// returns its path.
func fakeRunc(t *testing.T, document string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fake-runc")
	// Only shell builtins: a test may empty PATH.
	script := "#!/bin/sh\n[ \"$1\" = features ] || exit 2\necho '" + document + "'\n"
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// optionsOnStdin is what containerd writes to the stdin of -info.
func optionsOnStdin(t *testing.T, opts *options.Options) *bytes.Reader {
	t.Helper()
	any, err := typeurl.MarshalAnyToProto(opts)
	if err != nil {
		t.Fatal(err)
	}
	data, err := proto.Marshal(any)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.NewReader(data)
}

func TestInfoReportsFeaturesOfTheNamedRunc(t *testing.T) {
	runcPath := fakeRunc(t, `{"ociVersionMin":"1.0.0","ociVersionMax":"1.2.1","mountOptions":["ro","rro"],"linux":{"namespaces":["user","pid"]}}`)
	info, err := manager{}.Info(context.Background(), optionsOnStdin(t, &options.Options{BinaryName: runcPath}))
	if err != nil {
		t.Fatal(err)
	}
	if info.Features == nil {
		t.Fatal("-info reported no features")
	}
	if info.Features.TypeUrl != "types.containerd.io/opencontainers/runtime-spec/1/features/Features" {
		t.Errorf("features type URL = %q", info.Features.TypeUrl)
	}
	var got features.Features
	if err := json.Unmarshal(info.Features.Value, &got); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(got.MountOptions, "rro") || got.Linux == nil || !slices.Contains(got.Linux.Namespaces, "user") {
		t.Errorf("features lost what runc said: %+v", got)
	}
}

func TestInfoWithoutOptionsUsesRuncOnPath(t *testing.T) {
	runcPath := fakeRunc(t, `{"ociVersionMin":"1.0.0","ociVersionMax":"1.2.1"}`)
	dir := t.TempDir()
	if err := os.Symlink(runcPath, filepath.Join(dir, "runc")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
	info, err := manager{}.Info(context.Background(), bytes.NewReader(nil))
	if err != nil {
		t.Fatal(err)
	}
	if info.Features == nil {
		t.Fatal("-info reported no features from the runc on PATH")
	}
}

func TestInfoFailsClearlyWhenRuncIsMissing(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-such-runc")
	_, err := manager{}.Info(context.Background(), optionsOnStdin(t, &options.Options{BinaryName: missing}))
	if !errdefs.IsNotFound(err) {
		t.Fatalf("err = %v, want not found", err)
	}
	if !bytes.Contains([]byte(err.Error()), []byte(missing)) || !bytes.Contains([]byte(err.Error()), []byte("BinaryName")) {
		t.Errorf("error does not name the missing runc and how to fix it: %v", err)
	}
}

func TestInfoWithRuncWithoutFeaturesReportsNone(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old-runc")
	if err := os.WriteFile(path, []byte("#!/bin/sh\necho 'No help topic for features' >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	info, err := manager{}.Info(context.Background(), optionsOnStdin(t, &options.Options{BinaryName: path}))
	if err != nil {
		t.Fatal(err)
	}
	if info.Features != nil {
		t.Errorf("features = %v, want none", info.Features)
	}
}
