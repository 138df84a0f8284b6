package process

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/containerd/errdefs"
	runc "github.com/containerd/go-runc"

	stdio "github.com/teach/containerd-shim-teach-v2/io"
)

// Restoring a container from a checkpoint takes the same two steps as
// running one, with the work moved:
//
//	Create: nothing runs. The init is only recorded, CreatedFromCheckpoint.
//	Start:  `runc restore --detach` — CRIU rebuilds the saved process tree in
//	        a new container made from the bundle's config.json, and it goes on
//	        running from where it was saved. CreatedFromCheckpoint → Running.
//
// As for an exec, the pid is known only once runc returns, so the caller
// opens a StartWindow before Start for an exit that comes first.

// RestoreConfig says where a container's checkpoint is.
type RestoreConfig struct {
	ImagePath string // the CRIU images: CreateTaskRequest.Checkpoint
	WorkPath  string // CRIU's restore.log and scratch files; <bundle>/criu-work if empty
}

// unrestoredExitCode is what Wait and Delete report for a container that was
// never restored: no process ran, so there is no exit status to give.
// containerd uses 255 for an exit status it cannot know.
const unrestoredExitCode = 255

// runcDescriptors is the file runc checkpoint writes beside CRIU's images:
// what the container's stdio was, so that runc restore can hand CRIU new
// stdio in its place. Without it runc cannot restore.
const runcDescriptors = "descriptors.json"

// createFromCheckpoint records a container that Start will restore. The
// checkpoint must look like one runc took; whether CRIU can restore it is
// known only when Start tries.
func createFromCheckpoint(cfg InitConfig) (*InitProcess, error) {
	image := cfg.Checkpoint.ImagePath
	if _, err := os.Stat(filepath.Join(image, runcDescriptors)); err != nil {
		return nil, fmt.Errorf("checkpoint %s of %s is not one runc took (%v); restore from the folder `ctr task checkpoint --image-path` filled, or from a checkpoint image: %w",
			image, cfg.ID, err, errdefs.ErrInvalidArgument)
	}
	cfg.Stdio.Observer = cfg.Observer
	return &InitProcess{
		id:         cfg.ID,
		bundle:     cfg.Bundle,
		runc:       NewRunc(cfg.Runc),
		runcCfg:    cfg.Runc,
		paths:      cfg.Stdio,
		life:       NewCheckpointLifecycle(),
		checkpoint: cfg.Checkpoint,
		noPivot:    cfg.NoPivotRoot,
		streams:    noStreams{},
		observer:   cfg.Observer,
	}, nil
}

// restore runs `runc restore --detach`. The stdio is set up as for runc
// create: runc hands the pipes (or the console socket) it is given to CRIU,
// which makes them the restored process's stdio in place of the ones it had
// when it was saved. On failure nothing is left: no runc state, no pipes, and
// the caller gets CRIU's own reason.
func (p *InitProcess) restore(ctx context.Context) error {
	workPath := p.checkpoint.WorkPath
	if workPath == "" {
		workPath = filepath.Join(p.bundle, "criu-work")
	}
	if err := os.MkdirAll(workPath, 0o700); err != nil {
		return fmt.Errorf("create CRIU work folder: %w", err)
	}
	dumped, err := readDumpOptions(p.checkpoint.ImagePath)
	if err != nil {
		return err
	}
	setup, err := prepareStdio(p.paths)
	if err != nil {
		return fmt.Errorf("set up stdio for %s: %w", p.id, err)
	}
	pidFile := filepath.Join(p.bundle, "init.pid")
	opts := &runc.RestoreOpts{
		CheckpointOpts: dumped.checkpointOpts(p.checkpoint.ImagePath, workPath),
		IO:             setup.runcIO(),
		ConsoleSocket:  setup.consoleSocket(),
		PidFile:        pidFile,
		NoPivot:        p.noPivot,
		Detach:         true,
		// runc would otherwise make itself the subreaper of the restored
		// tree; without it, the tree is re-parented to the shim when runc
		// exits, and the Reaper collects its exit like any other.
		NoSubreaper: true,
	}
	err = runcCall(ctx, p.observer, p.runc, "restore", p.id, func(ctx context.Context) error {
		_, err := p.runc.Restore(ctx, p.id, p.bundle, opts)
		return err
	})
	if err != nil {
		setup.abort()
		p.forceDelete(ctx)
		if _, noLog := os.Stat(filepath.Join(workPath, "restore.log")); noLog == nil {
			err = fmt.Errorf("%w; CRIU says: %s", err, criuReason(workPath, "restore.log"))
		}
		return err
	}
	streams, err := setup.started(ctx)
	if err != nil {
		setup.abort()
		p.forceDelete(ctx)
		return err
	}
	pid, err := runc.ReadPidFile(pidFile)
	if err != nil {
		streams.Close()
		p.forceDelete(ctx)
		return fmt.Errorf("read pid file of restored %s: %w", p.id, err)
	}
	p.started.Lock()
	p.pid, p.streams = pid, streams
	p.started.Unlock()
	return nil
}

// dropUnrestored deletes a container that was never restored. runc holds
// nothing for it (a failed restore cleaned up after itself) and no process
// ran; the exit recorded here, with no pid, answers Wait and Delete.
func (p *InitProcess) dropUnrestored() (ExitStatus, error) {
	p.life.SetExited(ExitStatus{Code: unrestoredExitCode, ExitedAt: time.Now()})
	exit, _ := p.life.Exit()
	if err := p.life.MoveTo(Deleted, p.id); err != nil {
		return ExitStatus{}, err
	}
	return exit, nil
}

// noStreams stands for the stdio of a container not yet restored: it has no
// output to wait for and nothing to close.
type noStreams struct{}

func (noStreams) OutputDone() <-chan struct{} {
	done := make(chan struct{})
	close(done)
	return done
}
func (noStreams) CloseStdin()    {}
func (noStreams) ProcessExited() {}
func (noStreams) Close() error   { return nil }
func (noStreams) Resize(width, height uint32) error {
	return fmt.Errorf("the container has no terminal until Start restores it: %w", errdefs.ErrFailedPrecondition)
}

var _ stdio.Streams = noStreams{}

// dumpOptionsFile holds, next to a checkpoint's images, the CRIU options the
// checkpoint was taken with.
const dumpOptionsFile = "criu-dump-options.json"

// dumpOptions are the CRIU options of a checkpoint that its restore must
// repeat: CRIU will not restore an established TCP connection, an external
// unix socket, a terminal (shell job) or a file lock it was not told about,
// and namespaces and cgroups are rebuilt the way they were saved.
type dumpOptions struct {
	OpenTCP         bool     `json:"tcpEstablished,omitempty"`
	ExternalSockets bool     `json:"externalUnixSockets,omitempty"`
	Terminal        bool     `json:"shellJob,omitempty"`
	FileLocks       bool     `json:"fileLocks,omitempty"`
	EmptyNamespaces []string `json:"emptyNamespaces,omitempty"`
	CgroupsMode     string   `json:"cgroupsMode,omitempty"`
}

func dumpOptionsOf(cfg CheckpointConfig) dumpOptions {
	return dumpOptions{
		OpenTCP:         cfg.OpenTCP,
		ExternalSockets: cfg.ExternalSockets,
		Terminal:        cfg.Terminal,
		FileLocks:       cfg.FileLocks,
		EmptyNamespaces: cfg.EmptyNamespaces,
		CgroupsMode:     cfg.CgroupsMode,
	}
}

// save records the options beside the images of the checkpoint they took, so
// its restore repeats them; containerd keeps the file with the images when it
// stores the checkpoint.
func (o dumpOptions) save(imagePath string) error {
	data, err := json.Marshal(o)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(imagePath, dumpOptionsFile), data, 0o600); err != nil {
		return fmt.Errorf("checkpoint saved, but its CRIU options could not be recorded for the restore: %w", err)
	}
	return nil
}

// readDumpOptions reads what save wrote. A checkpoint without the
// file (taken by another shim) was taken with CRIU's defaults.
func readDumpOptions(imagePath string) (dumpOptions, error) {
	var opts dumpOptions
	data, err := os.ReadFile(filepath.Join(imagePath, dumpOptionsFile))
	if os.IsNotExist(err) {
		return opts, nil
	}
	if err != nil {
		return opts, fmt.Errorf("read the checkpoint's CRIU options: %w", err)
	}
	return parseDumpOptions(data)
}

// criuNamespaces are the namespaces runc's --empty-ns accepts.
var criuNamespaces = []string{"network", "pid", "ipc", "uts", "mount", "user", "cgroup", "time"}

// parseDumpOptions reads the file's JSON and refuses values that are not
// CRIU options: they become runc's command line.
func parseDumpOptions(data []byte) (dumpOptions, error) {
	var opts dumpOptions
	if err := json.Unmarshal(data, &opts); err != nil {
		return dumpOptions{}, fmt.Errorf("%s in the checkpoint is not valid JSON: %v: %w", dumpOptionsFile, err, errdefs.ErrInvalidArgument)
	}
	for _, ns := range opts.EmptyNamespaces {
		if !slices.Contains(criuNamespaces, ns) {
			return dumpOptions{}, fmt.Errorf("%s in the checkpoint names %q as a namespace; runc knows %v: %w", dumpOptionsFile, ns, criuNamespaces, errdefs.ErrInvalidArgument)
		}
	}
	switch opts.CgroupsMode {
	case "", "soft", "full", "strict", "ignore":
	default:
		return dumpOptions{}, fmt.Errorf("%s in the checkpoint has cgroups mode %q; runc knows soft, full, strict and ignore: %w", dumpOptionsFile, opts.CgroupsMode, errdefs.ErrInvalidArgument)
	}
	return opts, nil
}

// checkpointOpts turns the options into runc restore's CRIU flags.
func (o dumpOptions) checkpointOpts(imagePath, workPath string) runc.CheckpointOpts {
	return runc.CheckpointOpts{
		ImagePath:                imagePath,
		WorkDir:                  workPath,
		AllowOpenTCP:             o.OpenTCP,
		AllowExternalUnixSockets: o.ExternalSockets,
		AllowTerminal:            o.Terminal,
		FileLocks:                o.FileLocks,
		EmptyNamespaces:          o.EmptyNamespaces,
		Cgroups:                  runc.CgroupMode(o.CgroupsMode),
	}
}
