package shim

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	bootapi "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"google.golang.org/protobuf/proto"
)

// The `start` action speaks two protocols, because two generations of
// containerd start shims differently:
//
//   - containerd 2.3 and later write a protobuf BootstrapParams on stdin and
//     read a protobuf BootstrapResult from stdout. Version 3 in the result
//     means "call me with task API v3".
//   - containerd 1.7 to 2.2 pass everything as flags and environment, write
//     the runtime options (a protobuf Any) or nothing on stdin, and read the
//     shim's address as plain text from stdout; they then speak task API v2.
//
// Both are handled here (containerd's pkg/shim refuses the second).
//
// containerd 2.0 to 2.2 would also read JSON bootstrap parameters from
// stdout, asking for task API v3, as their own runc shim prints. 1.7 refuses
// that answer, and a shim cannot tell the two apart: they run it with the
// same flags and the same environment, MAX_SHIM_VERSION=2 included. So every
// flags-in containerd gets the plain address; v2 and v3 carry the same
// messages, and one service answers both (plugin.go).

// launchFlags are the flags containerd passes to every invocation of a shim.
type launchFlags struct {
	namespace, id, address, publishBinary, bundle string
	debug, version, info                          bool
	action                                        string
}

func parseLaunchFlags(args []string) (launchFlags, error) {
	var f launchFlags
	fs := flag.NewFlagSet("containerd-shim-teach-v2", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&f.namespace, "namespace", "", "")
	fs.StringVar(&f.id, "id", "", "")
	fs.StringVar(&f.address, "address", "", "")
	fs.StringVar(&f.publishBinary, "publish-binary", "", "")
	fs.StringVar(&f.bundle, "bundle", "", "")
	fs.BoolVar(&f.debug, "debug", false, "")
	fs.BoolVar(&f.version, "v", false, "")
	fs.BoolVar(&f.version, "version", false, "")
	fs.BoolVar(&f.info, "info", false, "")
	fs.String("socket", "", "")
	fs.String("debug-socket", "", "")
	err := fs.Parse(args)
	f.action = fs.Arg(0)
	return f, err
}

// decodeBootstrap tells the two protocols apart. A 1.7 stdin (runtime options,
// a protobuf Any) may happen to decode as BootstrapParams too, so the decoded
// id and namespace must also match the command line, as pkg/shim checks.
func decodeBootstrap(stdin []byte, f launchFlags) (params *bootapi.BootstrapParams, legacy bool) {
	params = &bootapi.BootstrapParams{}
	if len(stdin) > 0 && proto.Unmarshal(stdin, params) == nil &&
		params.InstanceID == f.id && params.Namespace == f.namespace {
		return params, false
	}
	level := bootapi.LogLevel_LOG_LEVEL_INFO
	if f.debug {
		level = bootapi.LogLevel_LOG_LEVEL_DEBUG
	}
	return &bootapi.BootstrapParams{
		InstanceID:             f.id,
		Namespace:              f.namespace,
		LogLevel:               level,
		ContainerdGrpcAddress:  f.address,
		ContainerdTtrpcAddress: os.Getenv("TTRPC_ADDRESS"),
		ContainerdBinary:       f.publishBinary,
	}, true
}

// runStart is the `start` action.
func runStart(ctx context.Context, f launchFlags, stdin io.Reader, stdout io.Writer) error {
	if f.namespace == "" || f.id == "" {
		return fmt.Errorf("start needs -namespace and -id")
	}
	input, err := io.ReadAll(io.LimitReader(stdin, 10<<20))
	if err != nil {
		return fmt.Errorf("read bootstrap parameters from stdin: %w", err)
	}
	params, legacy := decodeBootstrap(input, f)
	ctx = namespaces.WithNamespace(ctx, params.Namespace)
	result, err := manager{}.Start(ctx, params)
	if err != nil {
		return err
	}
	if legacy {
		_, err = io.WriteString(stdout, result.Address)
		return err
	}
	data, err := proto.Marshal(result)
	if err != nil {
		return err
	}
	_, err = stdout.Write(data)
	return err
}
