package shim

import (
	"strings"
	"testing"

	"github.com/containerd/containerd/api/types"
	"github.com/containerd/containerd/api/types/runc/options"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	"google.golang.org/protobuf/types/known/anypb"
)

func TestRuncOptions(t *testing.T) {
	opts, err := runcOptions(nil)
	if err != nil || opts.BinaryName != "" {
		t.Fatalf("no options: %+v, %v", opts, err)
	}
	sent, _ := typeurl.MarshalAnyToProto(&options.Options{BinaryName: "/usr/sbin/runc", Root: "/r", NoPivotRoot: true})
	opts, err = runcOptions(sent)
	if err != nil || opts.BinaryName != "/usr/sbin/runc" || opts.Root != "/r" || !opts.NoPivotRoot {
		t.Fatalf("runc options: %+v, %v", opts, err)
	}
}

func TestRuncOptionsRefusesOtherTypesByName(t *testing.T) {
	wrong, _ := typeurl.MarshalAnyToProto(&types.Mount{Type: "bind"})
	_, err := runcOptions(wrong)
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "containerd.types.Mount") {
		t.Fatalf("got %v", err)
	}
	_, err = runcOptions(&anypb.Any{TypeUrl: "example.com/unknown.Type", Value: []byte{1, 2}})
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "example.com/unknown.Type") {
		t.Fatalf("got %v", err)
	}
}

func TestSavedOptionsRoundTrip(t *testing.T) {
	bundle := t.TempDir()
	if opts, err := loadRuncOptions(bundle); err != nil || opts.BinaryName != "" {
		t.Fatalf("a bundle without options means defaults: %+v, %v", opts, err)
	}
	if err := saveRuncOptions(bundle, &options.Options{BinaryName: "/b/runc", Root: "/r"}); err != nil {
		t.Fatal(err)
	}
	opts, err := loadRuncOptions(bundle)
	if err != nil || opts.BinaryName != "/b/runc" || opts.Root != "/r" {
		t.Fatalf("%+v, %v", opts, err)
	}
}

// FuzzRuncOptions: any Any is read or refused with InvalidArgument.
func FuzzRuncOptions(f *testing.F) {
	good, _ := typeurl.MarshalAnyToProto(&options.Options{BinaryName: "runc"})
	f.Add(good.TypeUrl, good.Value)
	f.Add("containerd.runc.v1.Options", []byte{0xff, 0x01})
	f.Add("", []byte{})
	f.Fuzz(func(t *testing.T, typeURL string, value []byte) {
		_, err := runcOptions(&anypb.Any{TypeUrl: typeURL, Value: value})
		if err != nil && !errdefs.IsInvalidArgument(err) {
			t.Fatalf("error of the wrong kind: %v", err)
		}
	})
}

func TestRuncOptionsFromTheRuntimeOptionsTable(t *testing.T) {
	table, _ := typeurl.MarshalAnyToProto(&runtimeoptions.Options{
		TypeUrl:    "io.containerd.teach.v2",
		ConfigBody: []byte("BinaryName = \"/opt/runc\"\nSystemdCgroup = true\nRoot = \"/run/teach\"\n"),
	})
	opts, err := runcOptions(table)
	if err != nil || opts.BinaryName != "/opt/runc" || !opts.SystemdCgroup || opts.Root != "/run/teach" {
		t.Fatalf("%+v, %v", opts, err)
	}
	own, err := shimOptionsOf(table)
	if err != nil || own.Journal != "" {
		t.Fatalf("no Journal key: %+v, %v", own, err)
	}
	withJournal, _ := typeurl.MarshalAnyToProto(&runtimeoptions.Options{ConfigBody: []byte("BinaryName = \"/opt/runc\"\nJournal = \"debug\"\n")})
	if own, err := shimOptionsOf(withJournal); err != nil || own.Journal != "debug" {
		t.Fatalf("Journal key: %+v, %v", own, err)
	}
	if opts, err := runcOptions(withJournal); err != nil || opts.BinaryName != "/opt/runc" {
		t.Fatalf("the runc options beside Journal: %+v, %v", opts, err)
	}
	bad, _ := typeurl.MarshalAnyToProto(&runtimeoptions.Options{ConfigBody: []byte("BinaryName = ")})
	if _, err := runcOptions(bad); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("bad TOML: got %v", err)
	}
}
