package shim

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v2"
	"github.com/containerd/containerd/api/types/runc/options"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/teach/containerd-shim-teach-v2/process"
	"github.com/teach/containerd-shim-teach-v2/tomltable"
)

// runcOptions reads the runtime options containerd sends with Create: the
// same type the stock runc shim takes (containerd.runc.v1.Options), set from
// a client's task options or from the runtime's `options` table in
// containerd's config. No options means runc's defaults.
func runcOptions(any *anypb.Any) (*options.Options, error) {
	if any == nil || len(any.GetValue()) == 0 && any.GetTypeUrl() == "" {
		return &options.Options{}, nil
	}
	value, err := typeurl.UnmarshalAny(any)
	if err != nil {
		return nil, fmt.Errorf("runtime options of type %q cannot be read (%v); io.containerd.teach.v2 takes containerd.runc.v1.Options: %w",
			any.GetTypeUrl(), err, errdefs.ErrInvalidArgument)
	}
	switch opts := value.(type) {
	case *options.Options:
		return opts, nil
	case *runtimeoptions.Options:
		return fromRuntimeOptionsTable(opts)
	}
	return nil, fmt.Errorf("runtime options of type %q are not supported; io.containerd.teach.v2 takes containerd.runc.v1.Options: %w",
		any.GetTypeUrl(), errdefs.ErrInvalidArgument)
}

// fromRuntimeOptionsTable reads the runtime's `options` table that
// containerd's CRI plugin (and dockerd's daemon.json "options") pass, for a
// runtime type they do not know, as TOML text: the same keys as
// containerd.runc.v1.Options (BinaryName = "...", SystemdCgroup = true…).
func fromRuntimeOptionsTable(table *runtimeoptions.Options) (*options.Options, error) {
	body, err := runtimeOptionsBody(table)
	if err != nil {
		return nil, err
	}
	opts := &options.Options{}
	if err := tomltable.Decode(body, opts); err != nil {
		return nil, fmt.Errorf("runtime options table is not valid TOML of containerd.runc.v1.Options: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	return opts, nil
}

// runtimeOptionsBody is the TOML text of the runtime's options table: given
// inline, or as a file to read.
func runtimeOptionsBody(table *runtimeoptions.Options) ([]byte, error) {
	body := []byte(table.ConfigBody)
	if len(body) == 0 && table.ConfigPath != "" {
		var err error
		if body, err = os.ReadFile(table.ConfigPath); err != nil {
			return nil, fmt.Errorf("read runtime options file %s: %v: %w", table.ConfigPath, err, errdefs.ErrInvalidArgument)
		}
	}
	return body, nil
}

// shimOptions are the shim's own settings, for which
// containerd.runc.v1.Options has no field: they can be set only in the
// runtime's options table, beside the runc options (`Journal = "debug"`).
type shimOptions struct {
	// Journal is the journal level of the runtime's containers (off,
	// info, debug); the annotation JournalAnnotation overrides it per
	// container.
	Journal string `toml:"Journal"`
}

// JournalAnnotation sets a container's journal level: off, info or debug.
// It wins over the runtime options' `Journal` (journalSetting).
const JournalAnnotation = "io.containerd.teach.v2.journal"

// journalSetting is the journal level a container asks for: its
// annotation, else the runtime options; "" leaves it to the journal
// (journal.DefaultLevel). The journal reads it (observe.Container.Level).
func journalSetting(spec *bundleSpec, own shimOptions) string {
	if value, ok := spec.Annotations[JournalAnnotation]; ok {
		return value
	}
	return own.Journal
}

// shimOptionsOf reads the shim's own settings from the runtime options; any
// other options type has none.
func shimOptionsOf(any *anypb.Any) (shimOptions, error) {
	var own shimOptions
	if any == nil || len(any.GetValue()) == 0 {
		return own, nil
	}
	value, err := typeurl.UnmarshalAny(any)
	if err != nil {
		return own, nil // runcOptions has said what is wrong with it
	}
	table, ok := value.(*runtimeoptions.Options)
	if !ok {
		return own, nil
	}
	body, err := runtimeOptionsBody(table)
	if err != nil {
		return own, err
	}
	if err := tomltable.Decode(body, &own); err != nil {
		return own, fmt.Errorf("runtime options table is not valid TOML: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	return own, nil
}

// restoreConfig says where Start restores the container from, or is nil when
// Create makes a new one. Of the runc options, the shim reads CriuWorkPath,
// the folder for CRIU's restore log, as the stock runc shim does;
// CriuImagePath is containerd's: the Go client's WithRestoreImagePath sets it,
// and containerd 2.x sends that folder as the request's Checkpoint.
func restoreConfig(req *taskAPI.CreateTaskRequest, opts *options.Options) *process.RestoreConfig {
	if req.Checkpoint == "" {
		if opts.CriuImagePath != "" {
			log.L.WithField("id", req.ID).Warnf("runtime option CriuImagePath %s is ignored: containerd did not send it as the checkpoint to restore (containerd 1.7 does so only for io.containerd.runc.* runtimes); restore from a checkpoint image instead", opts.CriuImagePath)
		}
		return nil
	}
	return &process.RestoreConfig{ImagePath: req.Checkpoint, WorkPath: opts.CriuWorkPath}
}

// optionsFile is where Create saves the runtime options in the bundle. The
// `delete` action, run by containerd after a shim died, has no Create request
// to read them from, and needs them to find runc's binary and root.
const optionsFile = "options.json"

func saveRuncOptions(bundle string, opts *options.Options) error {
	data, err := json.Marshal(opts)
	if err != nil {
		return err
	}
	if err := writeBundleFile(filepath.Join(bundle, optionsFile), data); err != nil {
		return fmt.Errorf("save runtime options in bundle: %w", err)
	}
	return nil
}

// loadRuncOptions reads what saveRuncOptions wrote; a bundle without the file
// (Create never got that far) means runc's defaults.
func loadRuncOptions(bundle string) (*options.Options, error) {
	opts := &options.Options{}
	data, err := os.ReadFile(filepath.Join(bundle, optionsFile))
	if os.IsNotExist(err) {
		return opts, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(data, opts); err != nil {
		return nil, fmt.Errorf("read %s in %s: %w", optionsFile, bundle, err)
	}
	return opts, nil
}

// The OCI types containerd sends inside an Any are not protobuf messages:
// the Any carries their JSON under a name containerd gives them
// (typeurl.Register in its core/runtime and client packages). The shim
// reads the two it receives by those names; TestSpecTypeURLsAreContainerds
// checks them against containerd's.
const (
	processTypeURL        = "types.containerd.io/opencontainers/runtime-spec/1/Process"
	linuxResourcesTypeURL = "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources"
)

// processSpec reads the OCI process of an exec request: what to run, as
// whom, with which environment.
func processSpec(any *anypb.Any) (*specs.Process, error) {
	if any == nil {
		return nil, fmt.Errorf("exec request has no process spec: %w", errdefs.ErrInvalidArgument)
	}
	if any.GetTypeUrl() != processTypeURL {
		return nil, fmt.Errorf("exec process spec is a %q, not an OCI process (%s): %w", any.GetTypeUrl(), processTypeURL, errdefs.ErrInvalidArgument)
	}
	spec := &specs.Process{}
	if err := json.Unmarshal(any.GetValue(), spec); err != nil {
		return nil, fmt.Errorf("exec process spec cannot be read: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	if len(spec.Args) == 0 {
		return nil, fmt.Errorf("exec process spec has no args: %w", errdefs.ErrInvalidArgument)
	}
	return spec, nil
}

// linuxResources reads the resources of an Update request.
func linuxResources(any *anypb.Any) (*specs.LinuxResources, error) {
	if any == nil {
		return nil, fmt.Errorf("update request has no resources: %w", errdefs.ErrInvalidArgument)
	}
	if any.GetTypeUrl() != linuxResourcesTypeURL {
		return nil, fmt.Errorf("resources are a %q, not OCI Linux resources (%s): %w", any.GetTypeUrl(), linuxResourcesTypeURL, errdefs.ErrInvalidArgument)
	}
	resources := &specs.LinuxResources{}
	if err := json.Unmarshal(any.GetValue(), resources); err != nil {
		return nil, fmt.Errorf("resources cannot be read: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	return resources, nil
}

// checkpointConfig reads a Checkpoint request: the image path comes from the
// request or its CheckpointOptions, which also say how to save.
func checkpointConfig(req *taskAPI.CheckpointTaskRequest) (process.CheckpointConfig, error) {
	cfg := process.CheckpointConfig{ImagePath: req.Path}
	if req.Options == nil || len(req.Options.GetValue()) == 0 {
		return cfg, nil
	}
	value, err := typeurl.UnmarshalAny(req.Options)
	if err != nil {
		return cfg, fmt.Errorf("checkpoint options of type %q cannot be read: %v: %w", req.Options.GetTypeUrl(), err, errdefs.ErrInvalidArgument)
	}
	opts, ok := value.(*options.CheckpointOptions)
	if !ok {
		return cfg, fmt.Errorf("checkpoint options are a %q, not containerd.runc.v1.CheckpointOptions: %w", req.Options.GetTypeUrl(), errdefs.ErrInvalidArgument)
	}
	if opts.ImagePath != "" {
		cfg.ImagePath = opts.ImagePath
	}
	cfg.WorkPath = opts.WorkPath
	cfg.Exit = opts.Exit
	cfg.OpenTCP = opts.OpenTcp
	cfg.ExternalSockets = opts.ExternalUnixSockets
	cfg.Terminal = opts.Terminal
	cfg.FileLocks = opts.FileLocks
	cfg.EmptyNamespaces = opts.EmptyNamespaces
	cfg.CgroupsMode = opts.CgroupsMode
	return cfg, nil
}
