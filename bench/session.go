package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"

	"github.com/teach/containerd-shim-teach-v2/integration/harness"
)

// shimUnderTest is one of the two shims the run compares.
type shimUnderTest struct {
	label   string // the table's column: "teach" or "runc-v2"
	runtime string // what clients ask containerd for
	binary  string // the file containerd runs for that runtime
}

// session is the one private containerd both shims run under, with the
// busybox image imported into a namespace of the run's own.
type session struct {
	tb     *runTB
	daemon *harness.Containerd
	ctx    context.Context // carries the namespace; ends on SIGINT
	ns     string
	client *client.Client
	image  client.Image
	shims  []shimUnderTest // ours first
}

// stepTimeout bounds one container operation, so a hung shim ends the run
// with an error instead of hanging it.
const stepTimeout = 2 * time.Minute

// startSession starts containerd with the release-style runc shim first on
// its PATH, so io.containerd.runc.v2 resolves to that build, and our shim,
// the one `make build` made, on the harness's shim folder.
func startSession(ctx context.Context, tb *runTB, ourShim, logLevel string) *session {
	versions := harness.PinnedVersions(tb)
	referenceDir := harness.ToolDir(tb, "runc-shim-release")
	reference := harness.ToolBinary(tb, "runc-shim-release", harness.RuncShimBinaryName)

	// The harness links $TEACH_SHIM_BIN into the folder on the daemon's PATH.
	if err := os.Setenv("TEACH_SHIM_BIN", ourShim); err != nil {
		tb.Fatal(err)
	}
	teach := harness.ShimBinary(tb)

	daemon := harness.StartContainerdWith(tb, versions["CONTAINERD_VERSION"], harness.Options{
		ShimDirs: []string{referenceDir},
		LogLevel: logLevel,
	})
	_, ns := daemon.Namespace(tb, "bench")
	s := &session{
		tb:     tb,
		daemon: daemon,
		ctx:    namespaces.WithNamespace(ctx, ns),
		ns:     ns,
		client: daemon.Client(),
		shims: []shimUnderTest{
			{label: "teach", runtime: harness.TeachRuntime, binary: teach},
			{label: "runc-v2", runtime: harness.RuncRuntime, binary: reference},
		},
	}
	s.image = harness.ImportBusybox(tb, s.ctx, s.client)
	return s
}

// newContainer creates a container of the busybox image running command
// with the shim's runtime. It is removed at the end of the run if the phase
// that made it did not remove it.
func (s *session) newContainer(shim shimUnderTest, id string, command []string, specOpts ...oci.SpecOpts) client.Container {
	ctx, cancel := context.WithTimeout(s.ctx, stepTimeout)
	defer cancel()
	spec := append([]oci.SpecOpts{oci.WithImageConfig(s.image), oci.WithProcessArgs(command...)}, specOpts...)
	container, err := s.client.NewContainer(ctx, id,
		client.WithImage(s.image),
		client.WithNewSnapshot(id+"-rootfs", s.image),
		client.WithRuntime(shim.runtime, nil),
		client.WithNewSpec(spec...),
	)
	if err != nil {
		s.tb.Fatalf("create container %s: %v", id, err)
	}
	s.tb.Cleanup(func() { removeContainer(s.ctx, container) })
	return container
}

// removeContainer deletes a container's task (killing it first if it runs),
// the container and its snapshot. Gone already is fine.
func removeContainer(ctx context.Context, container client.Container) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stepTimeout)
	defer cancel()
	if task, err := container.Task(ctx, nil); err == nil {
		if _, err := task.Delete(ctx, client.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("delete task %s: %w", container.ID(), err)
		}
	}
	if err := container.Delete(ctx, client.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("delete container %s: %w", container.ID(), err)
	}
	return nil
}

// discardIO is the stdio every measured task gets, as `ctr run` would give
// it: FIFOs for stdout and stderr that the client reads, no stdin. The FIFOs
// go to the daemon's folder, not the shared /run/containerd/fifo.
func (s *session) discardIO(stdout io.Writer) cio.Creator {
	if stdout == nil {
		stdout = io.Discard
	}
	return cio.NewCreator(cio.WithStreams(nil, stdout, io.Discard), cio.WithFIFODir(s.daemon.FIFODir))
}

// startTask creates and starts a container's task; Wait is asked for before
// Start, so the exit of a process that ends at once is not missed.
func (s *session) startTask(ctx context.Context, container client.Container, creator cio.Creator) (client.Task, <-chan client.ExitStatus, error) {
	task, err := container.NewTask(ctx, creator)
	if err != nil {
		return nil, nil, fmt.Errorf("create task %s: %w", container.ID(), err)
	}
	exitCh, err := task.Wait(ctx)
	if err != nil {
		return task, nil, fmt.Errorf("wait task %s: %w", container.ID(), err)
	}
	if err := task.Start(ctx); err != nil {
		return task, nil, fmt.Errorf("start task %s: %w", container.ID(), err)
	}
	return task, exitCh, nil
}

// path names a file in the daemon's private folder, removed with it.
func (s *session) path(name string) string { return filepath.Join(s.daemon.Dir, name) }
