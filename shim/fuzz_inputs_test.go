package shim

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/types/known/anypb"
)

// The parsers of outside input that the other fuzz targets do not cover:
// the exec process spec and the Update resources (from a client, through
// containerd), the options.json the `delete` action reads back from a
// bundle. Each must answer with an errdefs kind, never panic. The seed
// corpora are in testdata/fuzz/<target>.

// FuzzProcessSpec: an exec's spec is read or refused as InvalidArgument.
func FuzzProcessSpec(f *testing.F) {
	good, _ := json.Marshal(&specs.Process{Args: []string{"sh"}, Cwd: "/"})
	f.Add(processTypeURL, good)
	f.Fuzz(func(t *testing.T, typeURL string, value []byte) {
		spec, err := processSpec(&anypb.Any{TypeUrl: typeURL, Value: value})
		if err != nil && !errdefs.IsInvalidArgument(err) {
			t.Fatalf("error of the wrong kind: %v", err)
		}
		if err == nil && len(spec.Args) == 0 {
			t.Fatal("accepted a process with no args")
		}
	})
}

// FuzzLinuxResources: Update's resources are read or refused as InvalidArgument.
func FuzzLinuxResources(f *testing.F) {
	limit := int64(64 << 20)
	good, _ := json.Marshal(&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &limit}})
	f.Add(linuxResourcesTypeURL, good)
	f.Fuzz(func(t *testing.T, typeURL string, value []byte) {
		if _, err := linuxResources(&anypb.Any{TypeUrl: typeURL, Value: value}); err != nil && !errdefs.IsInvalidArgument(err) {
			t.Fatalf("error of the wrong kind: %v", err)
		}
	})
}

// FuzzLoadRuncOptions: whatever options.json holds, reading it back never
// panics.
func FuzzLoadRuncOptions(f *testing.F) {
	f.Add([]byte(`{"binary_name":"/usr/sbin/runc","root":"/run/r"}`))
	f.Fuzz(func(t *testing.T, content []byte) {
		bundle := t.TempDir()
		if err := os.WriteFile(filepath.Join(bundle, optionsFile), content, 0o600); err != nil {
			t.Fatal(err)
		}
		_, _ = loadRuncOptions(bundle)
	})
}
