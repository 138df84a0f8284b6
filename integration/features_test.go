package integration

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	"github.com/opencontainers/runtime-spec/specs-go/features"
	"google.golang.org/protobuf/proto"

	"github.com/teach/containerd-shim-teach-v2/integration/harness"
)

// containerd asks a runtime what it supports by running its shim with -info
// (the introspection service's PluginInfo for the runtime, which CRI uses per
// runtime handler). The answer carries `runc features`.
func TestRuntimeInfoReportsRuncFeatures(t *testing.T) {
	forEachDaemonAndRuntime(t, func(t *testing.T, s *session) {
		info, err := s.client.RuntimeInfo(s.ctx, s.runtime, nil)
		if errdefs.IsNotImplemented(err) {
			t.Skipf("this containerd cannot be asked for runtime info: %v", err)
		}
		if err != nil {
			t.Fatalf("runtime info: %v", err)
		}
		got, ok := info.Features.(*features.Features)
		if !ok {
			t.Fatalf("runtime info features = %T, want runc's features", info.Features)
		}
		if !slices.Contains(got.MountOptions, "rro") {
			t.Errorf("mount options %v lack rro, which runc 1.5.3 supports", got.MountOptions)
		}
		if got.Linux == nil || !slices.Contains(got.Linux.Namespaces, "user") {
			t.Errorf("linux features %+v lack the user namespace", got.Linux)
		}
	})
}

// -info run as containerd runs it, with options naming a runc that is not
// there, fails and says which runc and how to name another.
func TestInfoWithMissingRuncSaysSo(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-such-runc")
	any, err := typeurl.MarshalAnyToProto(&options.Options{BinaryName: missing})
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := proto.Marshal(any)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(harness.ShimBinary(t), "-info")
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err == nil {
		t.Fatal("-info succeeded with a runc that does not exist")
	}
	if msg := stderr.String(); !strings.Contains(msg, missing) || !strings.Contains(msg, "BinaryName") {
		t.Errorf("-info error %q does not name the missing runc and the option to fix it", msg)
	}
}
