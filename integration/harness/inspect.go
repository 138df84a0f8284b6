package harness

import (
	"context"
	"os/exec"
	"testing"
	"time"
)

// inspectTimeout bounds one `containerd-shim-teach-v2 inspect`.
const inspectTimeout = time.Minute

// Inspect runs `containerd-shim-teach-v2 inspect -n namespace --state
// <d.StateDir> id args...`, as a user would against this daemon, with the
// daemon's PATH so that it finds the pinned runc.
func (d *Containerd) Inspect(t testing.TB, namespace, id string, args ...string) CommandResult {
	t.Helper()
	return d.inspect(t, append([]string{"inspect", "-n", namespace, "--state", d.StateDir, id}, args...))
}

// InspectFindingState is Inspect without --state: inspect has to find the
// daemon's state folder itself.
func (d *Containerd) InspectFindingState(t testing.TB, namespace, id string, args ...string) CommandResult {
	t.Helper()
	return d.inspect(t, append([]string{"inspect", "-n", namespace, id}, args...))
}

func (d *Containerd) inspect(t testing.TB, argv []string) CommandResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), inspectTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, ShimBinary(t), argv...)
	cmd.Env = d.env
	return RunCommand(t, ctx, cmd, nil)
}
