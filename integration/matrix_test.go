package integration

import (
	"context"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"

	"github.com/teach/containerd-shim-teach-v2/integration/harness"
)

// runtimeRow is one shim a test runs against; name is the subtest's name.
type runtimeRow struct {
	name    string
	runtime string
}

var runtimeRows = []runtimeRow{
	{name: "teach", runtime: harness.TeachRuntime},
	{name: "runc", runtime: harness.RuncRuntime},
}

// sessionTimeout bounds one row of one test; the slowest row (200 short
// containers) needs well under a minute.
const sessionTimeout = 3 * time.Minute

// referenceSettleTimeout is how long the stock shim's rows wait for what a
// shim does on its own (a trace removed, an event sent). What the stock shim
// misses there is logged, never failed on, and it misses some for good: a
// minute per miss, as our rows wait, would only lengthen every run.
const referenceSettleTimeout = 10 * time.Second

// session is what a test row works with: a daemon, the runtime under test,
// and a namespace of its own holding the busybox image.
type session struct {
	daemon  *harness.Containerd
	runtime string
	ns      string
	ctx     context.Context // carries ns, and the row's deadline
	client  *client.Client
	image   client.Image
}

// forEachDaemonAndRuntime runs test once per pinned containerd release and
// runtime, as subtests containerd-<version>/<runtime>. The releases run in
// parallel, since each has its own daemon; the runtimes of one release share
// it, one after the other, each in its own namespace.
func forEachDaemonAndRuntime(t *testing.T, test func(t *testing.T, s *session)) {
	for _, release := range harness.ContainerdReleases(t) {
		t.Run("containerd-"+release.Version, func(t *testing.T) {
			t.Parallel()
			daemon := harness.StartContainerd(t, release.Version)
			for _, row := range runtimeRows {
				t.Run(row.name, func(t *testing.T) {
					test(t, newSession(t, daemon, row))
				})
			}
		})
	}
}

func newSession(t *testing.T, daemon *harness.Containerd, row runtimeRow) *session {
	t.Helper()
	if row.runtime == harness.TeachRuntime {
		harness.ShimBinary(t) // builds it, or fails this row with the reason
	}
	nsCtx, ns := daemon.Namespace(t, row.name)
	ctx, cancel := context.WithTimeout(nsCtx, sessionTimeout)
	t.Cleanup(cancel)
	return &session{
		daemon:  daemon,
		runtime: row.runtime,
		ns:      ns,
		ctx:     ctx,
		client:  daemon.Client(),
		image:   harness.ImportBusybox(t, ctx, daemon.Client()),
	}
}

// settleTimeout is how long this row waits for what the shim does on its own
// after a step. Our shim's rows wait harness.SettleTimeout, which ends as soon
// as the check passes and outlasts a busy machine; the stock shim's rows wait
// referenceSettleTimeout.
func (s *session) settleTimeout() time.Duration {
	if s.runtime == harness.TeachRuntime {
		return harness.SettleTimeout
	}
	return referenceSettleTimeout
}
