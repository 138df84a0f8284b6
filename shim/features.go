package shim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"

	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"github.com/opencontainers/runtime-spec/specs-go/features"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// featuresTypeURL is the type containerd registers for runc's features
// (core/runtime/typeurl.go): the Any carries the JSON of
// specs-go/features.Features under this name, and containerd's CRI decodes
// it to learn, per runtime handler, whether user namespaces and recursive
// read-only mounts can be offered.
const featuresTypeURL = "types.containerd.io/opencontainers/runtime-spec/1/features/Features"

// defaultRuncBinary is the runc that go-runc runs when the options name none.
const defaultRuncBinary = "runc"

// infoOptions reads the runtime options containerd writes to the stdin of
// `-info`: a protobuf Any, the same one Create receives. Nothing on stdin
// means no options were configured.
func infoOptions(optionsR io.Reader) (*options.Options, error) {
	if optionsR == nil {
		return &options.Options{}, nil
	}
	data, err := io.ReadAll(optionsR)
	if err != nil {
		return nil, fmt.Errorf("read runtime options from stdin: %w", err)
	}
	if len(data) == 0 {
		return &options.Options{}, nil
	}
	var any anypb.Any
	if err := proto.Unmarshal(data, &any); err != nil {
		return nil, fmt.Errorf("runtime options on stdin are not a protobuf Any (%v); containerd writes containerd.runc.v1.Options there: %w",
			err, errdefs.ErrInvalidArgument)
	}
	return runcOptions(&any)
}

// runcFeatures asks the runc the options name (binaryName, or runc on PATH)
// what it supports, by `runc features`, and wraps the answer the way
// containerd reads it.
//
// A runc that cannot be found is an error: every container of this runtime
// would fail, and -info is where an operator first sees it. A runc that is
// there but has no `features` command (an old runc, or another OCI runtime)
// only has no features to report, as containerd then assumes the minimum.
func runcFeatures(ctx context.Context, binaryName string) (*anypb.Any, error) {
	if binaryName == "" {
		binaryName = defaultRuncBinary
	}
	runcPath, err := exec.LookPath(binaryName)
	if err != nil {
		return nil, fmt.Errorf("runc %q not found (%v); install runc on containerd's PATH or name it with the runtime option BinaryName: %w",
			binaryName, err, errdefs.ErrNotFound)
	}
	answer, err := runRuncFeatures(ctx, runcPath)
	if err != nil {
		log.G(ctx).WithError(err).Warn("runc reports no features; containerd assumes the least it can")
		return nil, nil
	}
	return &anypb.Any{TypeUrl: featuresTypeURL, Value: answer}, nil
}

// runRuncFeatures runs `runc features` and returns its JSON, after checking
// that it is the features document (so containerd is not handed something
// it cannot decode).
func runRuncFeatures(ctx context.Context, runcPath string) ([]byte, error) {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, runcPath, "features")
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s features: %w: %s", runcPath, err, strings.TrimSpace(stderr.String()))
	}
	var document features.Features
	if err := json.Unmarshal(stdout, &document); err != nil {
		return nil, fmt.Errorf("%s features printed no features document: %w", runcPath, err)
	}
	if document.OCIVersionMax == "" {
		return nil, errors.New(runcPath + " features printed no ociVersionMax")
	}
	// Re-encode so the Any holds exactly the fields containerd knows.
	return json.Marshal(&document)
}
