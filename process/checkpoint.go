package process

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/errdefs"
	runc "github.com/containerd/go-runc"
)

// CheckpointConfig is what to save and how (containerd's CheckpointOptions).
type CheckpointConfig struct {
	ImagePath       string // where CRIU writes the images
	WorkPath        string // CRIU's logs and scratch files; the bundle if empty
	Exit            bool   // stop the container after saving it
	OpenTCP         bool
	ExternalSockets bool
	Terminal        bool
	FileLocks       bool
	EmptyNamespaces []string
	CgroupsMode     string
}

// Checkpoint saves the running container with `runc checkpoint` (CRIU).
// Unless Exit is asked, the container keeps running: runc --leave-running.
// When CRIU fails, its own reason (the tail of its dump log) is returned.
func (p *InitProcess) Checkpoint(ctx context.Context, cfg CheckpointConfig) error {
	p.turn.Lock()
	defer p.turn.Unlock()
	if state := p.life.State(); state != Running && state != Paused {
		return fmt.Errorf("container %s is %s; only a running or paused container can be checkpointed: %w", p.id, state, errdefs.ErrFailedPrecondition)
	}
	if cfg.ImagePath == "" {
		return fmt.Errorf("checkpoint of %s needs an image path: %w", p.id, errdefs.ErrInvalidArgument)
	}
	workPath := cfg.WorkPath
	if workPath == "" {
		workPath = filepath.Join(p.bundle, "criu-work")
	}
	if err := os.MkdirAll(workPath, 0o700); err != nil {
		return fmt.Errorf("create CRIU work folder: %w", err)
	}
	var actions []runc.CheckpointAction
	if !cfg.Exit {
		actions = append(actions, runc.LeaveRunning)
	}
	dumped := dumpOptionsOf(cfg)
	opts := dumped.checkpointOpts(cfg.ImagePath, workPath)
	err := runcCall(ctx, p.observer, p.runc, "checkpoint", p.id, func(ctx context.Context) error { return p.runc.Checkpoint(ctx, p.id, &opts, actions...) })
	if err != nil {
		return fmt.Errorf("%w; CRIU says: %s", err, criuReason(workPath, "dump.log"))
	}
	return dumped.save(cfg.ImagePath)
}

// criuReason is the last error lines of one of CRIU's logs in its work
// folder: dump.log for a checkpoint, restore.log for a restore.
func criuReason(workPath, logName string) string {
	data, err := os.ReadFile(filepath.Join(workPath, logName))
	if err != nil {
		return "(no " + logName + ")"
	}
	var errors []string
	for _, line := range strings.Split(string(data), "\n") {
		if strings.Contains(line, "Error") {
			errors = append(errors, strings.TrimSpace(line))
		}
	}
	if len(errors) > 3 {
		errors = errors[len(errors)-3:]
	}
	if len(errors) == 0 {
		return "(no error in " + logName + ")"
	}
	return strings.Join(errors, "; ")
}
