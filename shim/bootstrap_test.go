package shim

import (
	"strings"
	"testing"

	bootapi "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/typeurl/v2"
	"google.golang.org/protobuf/proto"
)

var testFlags = launchFlags{namespace: "default", id: "c1", address: "/run/containerd/containerd.sock", action: "start"}

func TestDecodeBootstrapFromContainerd2(t *testing.T) {
	sent := &bootapi.BootstrapParams{
		InstanceID: "c1", Namespace: "default",
		ContainerdGrpcAddress: "/x/grpc.sock", ContainerdTtrpcAddress: "/x/ttrpc.sock",
		LogLevel: bootapi.LogLevel_LOG_LEVEL_DEBUG,
	}
	data, err := proto.Marshal(sent)
	if err != nil {
		t.Fatal(err)
	}
	got, legacy := decodeBootstrap(data, testFlags)
	if legacy {
		t.Fatal("BootstrapParams taken for the 1.7 protocol")
	}
	if got.ContainerdTtrpcAddress != "/x/ttrpc.sock" || got.LogLevel != bootapi.LogLevel_LOG_LEVEL_DEBUG {
		t.Fatalf("params not preserved: %v", got)
	}
}

func TestDecodeBootstrapFromContainerd17(t *testing.T) {
	t.Setenv("TTRPC_ADDRESS", "/run/containerd/containerd.sock.ttrpc")
	runtimeOptions, err := typeurl.MarshalAnyToProto(&options.Options{BinaryName: "/usr/bin/runc"})
	if err != nil {
		t.Fatal(err)
	}
	data, err := proto.Marshal(runtimeOptions)
	if err != nil {
		t.Fatal(err)
	}
	for name, stdin := range map[string][]byte{"runtime options": data, "nothing": nil} {
		got, legacy := decodeBootstrap(stdin, testFlags)
		if !legacy {
			t.Fatalf("%s on stdin taken for BootstrapParams", name)
		}
		if got.InstanceID != "c1" || got.Namespace != "default" ||
			got.ContainerdGrpcAddress != testFlags.address || got.ContainerdTtrpcAddress != "/run/containerd/containerd.sock.ttrpc" {
			t.Fatalf("%s: params from flags and env wrong: %v", name, got)
		}
	}
}

func TestDecodeBootstrapRefusesParamsForAnotherTask(t *testing.T) {
	data, _ := proto.Marshal(&bootapi.BootstrapParams{InstanceID: "other", Namespace: "default"})
	if _, legacy := decodeBootstrap(data, testFlags); !legacy {
		t.Fatal("params naming another task were accepted")
	}
}

func TestParseLaunchFlags(t *testing.T) {
	f, err := parseLaunchFlags([]string{"-namespace", "k8s.io", "-address", "/a.sock", "-publish-binary", "/usr/bin/containerd", "-id", "c1", "-debug", "start"})
	if err != nil || f.namespace != "k8s.io" || f.id != "c1" || !f.debug || f.action != "start" {
		t.Fatalf("%+v, %v", f, err)
	}
	f, err = parseLaunchFlags([]string{"-namespace", "default", "-id", "c1", "-bundle", "/b", "delete"})
	if err != nil || f.action != "delete" || f.bundle != "/b" {
		t.Fatalf("%+v, %v", f, err)
	}
}

// FuzzDecodeBootstrap: whatever arrives on stdin, decoding never panics, and
// the parameters always name the task the command line names.
func FuzzDecodeBootstrap(f *testing.F) {
	data, _ := proto.Marshal(&bootapi.BootstrapParams{InstanceID: "c1", Namespace: "default"})
	f.Add(data)
	f.Add([]byte{})
	f.Add([]byte("\x0a\x02c1\x12\x07default"))
	f.Fuzz(func(t *testing.T, stdin []byte) {
		params, _ := decodeBootstrap(stdin, testFlags)
		if params.InstanceID != testFlags.id || params.Namespace != testFlags.namespace {
			t.Fatalf("params for %q/%q, command line says %q/%q", params.Namespace, params.InstanceID, testFlags.namespace, testFlags.id)
		}
	})
}

// FuzzParseLaunchFlags: any argument list is parsed or refused, never a panic.
func FuzzParseLaunchFlags(f *testing.F) {
	f.Add("-namespace default -id c1 start")
	f.Add("-debug -v")
	f.Fuzz(func(t *testing.T, line string) {
		_, _ = parseLaunchFlags(strings.Fields(line))
	})
}
