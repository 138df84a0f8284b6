package process

import (
	"context"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	runc "github.com/containerd/go-runc"
)

// The journal records each runc command with its argv, pid and exit status.
// go-runc builds the command itself and shows it only to its Monitor, which
// is our Reaper; so runcCall marks the command it is about to run with a tag
// in its environment (go-runc's WithExtraEnv), and the Reaper, seeing the tag
// when it starts and reaps the command, fills in what runcCall will record.
// Commands of a container whose journal is off carry no tag.

// commandTagEnv is the environment variable holding the tag. runc ignores
// it; the container never sees it (its environment comes from config.json).
const commandTagEnv = "TEACH_SHIM_COMMAND"

// observedCommand is what the Reaper saw of one tagged command.
type observedCommand struct {
	tag string

	mu     sync.Mutex
	argv   []string // guarded by mu
	pid    int      // guarded by mu
	status int      // guarded by mu
	exited bool     // guarded by mu
}

var (
	// observed holds the tagged commands in progress. It is global
	// because go-runc's Monitor is.
	observed sync.Map // tag → *observedCommand
	lastTag  atomic.Uint64
)

// observeCommand tags the runc commands run with the returned context.
func observeCommand(ctx context.Context) (context.Context, *observedCommand) {
	seen := &observedCommand{tag: strconv.FormatUint(lastTag.Add(1), 10)}
	observed.Store(seen.tag, seen)
	return runc.WithExtraEnv(ctx, commandTagEnv+"="+seen.tag), seen
}

// forget ends the observation.
func (c *observedCommand) forget() {
	if c != nil {
		observed.Delete(c.tag)
	}
}

// result returns what was seen; ok is false if no command was started.
func (c *observedCommand) result() (argv []string, pid, status int, exited bool) {
	if c == nil {
		return nil, 0, 0, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.argv, c.pid, c.status, c.exited
}

// observedBy finds the observation a command's tag points to.
func observedBy(cmd *exec.Cmd) *observedCommand {
	// The tag is appended last; scan from the end.
	for i := len(cmd.Env) - 1; i >= 0; i-- {
		if tag, ok := strings.CutPrefix(cmd.Env[i], commandTagEnv+"="); ok {
			if seen, ok := observed.Load(tag); ok {
				return seen.(*observedCommand)
			}
			return nil
		}
	}
	return nil
}

func noteCommandStarted(cmd *exec.Cmd) {
	if seen := observedBy(cmd); seen != nil {
		seen.mu.Lock()
		seen.argv, seen.pid = cmd.Args, cmd.Process.Pid
		seen.mu.Unlock()
	}
}

func noteCommandExited(cmd *exec.Cmd, status int) {
	if seen := observedBy(cmd); seen != nil {
		seen.mu.Lock()
		seen.status, seen.exited = status, true
		seen.mu.Unlock()
	}
}
