package process

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	runc "github.com/containerd/go-runc"
	"github.com/containerd/log"

	"github.com/teach/containerd-shim-teach-v2/observe"
)

// DefaultRuncRoot is where runc keeps its container state unless the runtime
// options name another root. As with the stock runc shim, each containerd
// namespace gets its own folder beneath it, so ids only need to be unique
// within a namespace.
const DefaultRuncRoot = "/run/containerd/runc"

// RuncConfig is what the shim needs to know to call runc for one container.
type RuncConfig struct {
	Binary        string // runc binary; "runc" means the first one on PATH
	Root          string // runc --root; DefaultRuncRoot when empty
	Namespace     string
	Bundle        string
	SystemdCgroup bool
}

// NewRunc returns the go-runc command wrapper for one container. runc writes
// its own log, as JSON lines, into the bundle: when a command fails, its error
// message is there (runc's stderr belongs to the container's stderr during
// create).
func NewRunc(cfg RuncConfig) *runc.Runc {
	binary := cfg.Binary
	if binary == "" {
		binary = "runc"
	}
	root := cfg.Root
	if root == "" {
		root = DefaultRuncRoot
	}
	return &runc.Runc{
		Command:       binary,
		Root:          filepath.Join(root, cfg.Namespace),
		Log:           filepath.Join(cfg.Bundle, "log.json"),
		LogFormat:     runc.JSON,
		SystemdCgroup: cfg.SystemdCgroup,
	}
}

// runcDeadline is how long one runc command may run before the shim kills
// it and answers the request with an error: a runc that hangs (a stuck
// hook, a frozen cgroup, a wedged kernel call) must not hang the shim's RPCs
// with it. Commands that only act on a container take milliseconds; those
// that build one may run hooks; a checkpoint writes all of its memory, a
// restore reads it back.
func runcDeadline(command string) time.Duration {
	switch command {
	case "create", "start", "exec":
		return time.Minute
	case "checkpoint", "restore":
		return 10 * time.Minute
	}
	return 8 * time.Second
}

// runcCall runs one runc command, as the process's observer sees it (its
// start, argv, pid, exit status and error: observe.Observer.RuncCommand).
func runcCall(ctx context.Context, observer observe.Observer, rc *runc.Runc, command, id string, call func(ctx context.Context) error) error {
	return observer.RuncCommand(ctx, command, func(ctx context.Context) error {
		return runRunc(ctx, rc, command, id, call)
	})
}

// runRunc runs one runc command under its deadline and, if it fails, wraps
// the failure with runc's own reason, read from what the command appended to
// its log, so the caller sees `exec: "nosuch": executable file not found in
// $PATH` rather than "exit status 1".
func runRunc(ctx context.Context, rc *runc.Runc, command, id string, call func(ctx context.Context) error) error {
	limit := runcDeadline(command)
	callCtx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	logOffset := fileSize(rc.Log)
	started := time.Now()
	err := call(callCtx)
	if err == nil {
		return nil
	}
	if errors.Is(callCtx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
		log.G(ctx).WithFields(log.Fields{"command": command, "id": id, "after": time.Since(started)}).Error("runc did not finish in time; killed it")
		return fmt.Errorf("runc %s %s did not finish within %v and was killed: %w", command, id, limit, context.DeadlineExceeded)
	}
	// go-runc formats some errors with %s, losing ENOENT, so ask directly.
	if _, lookErr := exec.LookPath(rc.Command); lookErr != nil {
		return fmt.Errorf("runc %s %s: runc binary %q cannot be run (%v); install runc or set BinaryName in the runtime options: %w",
			command, id, rc.Command, lookErr, errdefs.ErrNotFound)
	}
	reason := lastRuncError(rc.Log, logOffset)
	if reason == "" {
		reason = err.Error()
	}
	return fmt.Errorf("runc %s %s: %s: %w", command, id, reason, runcErrorKind(reason))
}

// runcErrorKind chooses the errdefs kind containerd will see.
func runcErrorKind(reason string) error {
	for _, gone := range []string{"container does not exist", "process already finished", "container not running", "no such process"} {
		if strings.Contains(reason, gone) {
			return errdefs.ErrNotFound
		}
	}
	return errdefs.ErrUnknown
}

func fileSize(path string) int64 {
	info, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return info.Size()
}

// lastRuncError returns the message of the last error runc logged after
// offset.
func lastRuncError(logPath string, offset int64) string {
	f, err := os.Open(logPath)
	if err != nil {
		return ""
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return ""
	}
	var last string
	scanner := bufio.NewScanner(f)
	scanner.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for scanner.Scan() {
		var entry struct {
			Level string `json:"level"`
			Msg   string `json:"msg"`
		}
		if json.Unmarshal(scanner.Bytes(), &entry) == nil && (entry.Level == "error" || entry.Level == "fatal") {
			last = entry.Msg
		}
	}
	return last
}
