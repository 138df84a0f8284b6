package integration

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/api/types"
	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/teach/containerd-shim-teach-v2/integration/harness"
)

// Restore brings a checkpointed container back: `ctr run --checkpoint`, or
// the Go client's WithTaskCheckpoint. containerd unpacks the checkpoint into
// a folder and names it in Create; the shim's Start runs runc restore, and
// the saved process goes on from where it was.

// TestRestoreFailureLeavesNothingBehind restores from checkpoints that
// cannot be restored: a folder without runc's images, and one whose images
// are garbage to CRIU. The restore must fail with runc's or CRIU's reason;
// once the task is deleted nothing of it may stay (runc state, mounts,
// bundle), and the shim must go on serving the other containers of its
// group.
func TestRestoreFailureLeavesNothingBehind(t *testing.T) {
	cases := []struct {
		name  string
		files map[string]string
		// want is what our shim's error says; the stock shim's is logged.
		want []string
	}{
		{"no images", nil, []string{"is not one runc took", "descriptors.json"}},
		{"garbage images", map[string]string{
			"descriptors.json": `["/dev/null","pipe:[1]","pipe:[2]"]`,
			"inventory.img":    "not a CRIU image\n",
		}, []string{"runc restore", "CRIU says: ", "Error (criu/"}},
	}
	forEachDaemonAndRuntime(t, func(t *testing.T, s *session) {
		group := withSpecOpts(oci.WithAnnotations(map[string]string{"io.kubernetes.cri.sandbox-id": "restore-group"}))
		neighbour := s.newContainer(t, "restore-neighbour", []string{"sleep", "1000"}, group)
		neighbourTask, _ := s.startTask(t, neighbour, &stdio{})
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				container := s.newContainer(t, "restore-"+sanitize(tc.name), []string{"sleep", "1000"}, group)
				err := s.restoreFails(t, container, s.storeCheckpoint(t, tc.files))
				t.Logf("restore: %v", err)
				if s.runtime == harness.TeachRuntime {
					if tc.files == nil && !errdefs.IsInvalidArgument(err) {
						t.Errorf("a folder without runc's images: %v, want InvalidArgument", err)
					}
					for _, want := range tc.want {
						if !strings.Contains(err.Error(), want) {
							t.Errorf("the caller does not get the reason (%q is missing):\n%v", want, err)
						}
					}
				}
				s.daemon.AssertNoContainerTraces(t, s.ns, container.ID())
				if s.runtime == harness.TeachRuntime {
					assertShimEventOrder(t, s)
				}

				if status, err := neighbourTask.Status(s.ctx); err != nil || status.Status != client.Running {
					t.Errorf("the group's other container after the failed restore: %v, %v", status.Status, err)
				}
				next := s.newContainer(t, "after-"+sanitize(tc.name), []string{"sh", "-c", "echo fine"}, group)
				streams := &stdio{}
				task, exitCh := s.startTask(t, next, streams)
				code := exitCodeOf(t, exitCh)
				deleteTask(t, s.ctx, task, code)
				switch {
				case code != 0:
					t.Errorf("next container of the group: exit code %d, want 0", code)
				case streams.stdout.String() != "fine\n":
					s.shimFellShort(t, "next container of the group printed %q, want %q", streams.stdout.String(), "fine\n")
				}
			})
		}
	})
}

// restoreFails creates container's task from checkpoint and starts it,
// expecting one of the two to fail; it deletes what was created and returns
// the failure. Like `ctr run`, it waits for the task before starting it: our
// shim must answer that Wait once the task is deleted, with the exit status
// containerd uses for one it cannot know (no process ever ran). The stock
// shim leaves it unanswered while the shim lives.
func (s *session) restoreFails(t *testing.T, container client.Container, checkpoint ocispec.Descriptor) error {
	t.Helper()
	task, err := s.createTask(container, &stdio{}, withCheckpointDescriptor(checkpoint))
	if err != nil {
		return err
	}
	if status, err := task.Status(s.ctx); err != nil || status.Status != client.Created {
		t.Errorf("task to be restored: %v, %v; want created", status.Status, err)
	}
	waitCtx, stopWaiting := context.WithCancel(s.ctx)
	defer stopWaiting()
	exitCh, err := task.Wait(waitCtx)
	if err != nil {
		t.Fatal(err)
	}
	err = task.Start(s.ctx)
	if err == nil {
		t.Fatal("a checkpoint that cannot be restored was restored")
	}
	status, deleteErr := task.Delete(s.ctx)
	if deleteErr != nil {
		t.Errorf("delete the task whose restore failed: %v", deleteErr)
	}
	if s.runtime == harness.TeachRuntime {
		code, waitErr := awaitExit(exitCh, exitTimeout)
		if waitErr != nil || code != client.UnknownExitStatus || status.ExitCode() != client.UnknownExitStatus {
			t.Errorf("never restored: Wait says %d (%v), Delete says %d; want %d from both", code, waitErr, status.ExitCode(), client.UnknownExitStatus)
		}
	}
	return err
}

// storeCheckpoint stores files as containerd stores a checkpoint's image
// folder: a tar in its content store.
func (s *session) storeCheckpoint(t *testing.T, files map[string]string) ocispec.Descriptor {
	t.Helper()
	var archive bytes.Buffer
	tw := tar.NewWriter(&archive)
	for name, data := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: int64(len(data))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	desc := ocispec.Descriptor{
		MediaType: images.MediaTypeContainerd1Checkpoint,
		Digest:    digest.FromBytes(archive.Bytes()),
		Size:      int64(archive.Len()),
	}
	// The lease keeps the blob from containerd's garbage collector until
	// the test ends.
	ctx, done, err := s.client.WithLease(s.ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { done(context.WithoutCancel(s.ctx)) })
	if err := content.WriteBlob(ctx, s.client.ContentStore(), "checkpoint-"+desc.Digest.Encoded(), bytes.NewReader(archive.Bytes()), desc); err != nil {
		t.Fatal(err)
	}
	return desc
}

// withCheckpointDescriptor makes the task restore from a checkpoint blob in
// containerd's content store (what WithTaskCheckpoint finds in a checkpoint
// image's index).
func withCheckpointDescriptor(desc ocispec.Descriptor) client.NewTaskOpts {
	return func(_ context.Context, _ *client.Client, info *client.TaskInfo) error {
		info.Checkpoint = &types.Descriptor{MediaType: desc.MediaType, Digest: desc.Digest.String(), Size: desc.Size}
		return nil
	}
}

// counterScript prints 0 to 99, one number a tenth of a second, then exits
// 7: a restored copy must go on counting from where it was saved.
const counterScript = `i=0; while [ $i -lt 100 ]; do echo $i; i=$((i+1)); sleep 0.1; done; exit 7`

// startCounter runs counterScript in a new container and waits until it has
// counted to 5.
func (s *session) startCounter(t *testing.T, id string) (client.Container, client.Task, <-chan client.ExitStatus, *stdio) {
	t.Helper()
	container := s.newContainer(t, id, []string{"sh", "-c", counterScript})
	streams := &stdio{}
	task, exitCh := s.startTask(t, container, streams)
	waitUntilPrinted(t, streams, "5\n")
	return container, task, exitCh, streams
}

// TestCheckpointExitAndRestore checkpoints a counting container with
// --exit, then restores it into a new task of the same container: the count
// goes on from the next number and ends with the script's exit code.
func TestCheckpointExitAndRestore(t *testing.T) {
	if problem := criuProblem(t); problem != "" {
		t.Skipf("criu check fails on this kernel, so CRIU can neither checkpoint nor restore here: %s", problem)
	}
	forEachDaemonAndRuntime(t, func(t *testing.T, s *session) {
		container, task, exitCh, before := s.startCounter(t, "counter")
		checkpoint, err := task.Checkpoint(s.ctx, withCheckpointExit)
		if err != nil {
			t.Fatalf("checkpoint: %v", err)
		}
		code := exitCodeOf(t, exitCh)
		deleteTask(t, s.ctx, task, code)

		after := &stdio{}
		restored, restoredExit := s.startTask(t, container, after, client.WithTaskCheckpoint(checkpoint))
		code = exitCodeOf(t, restoredExit)
		deleteTask(t, s.ctx, restored, code)
		if code != 7 {
			t.Errorf("restored counter exited with %d, want 7", code)
		}
		assertCountGoesOn(t, before.stdout.String(), after.stdout.String())
	})
}

// TestCtrCheckpointAndRunFromCheckpoint is the user's session with ctr: the
// checkpoint of a running container (it keeps running) is an image that
// `ctr run --checkpoint` restores into a new container.
func TestCtrCheckpointAndRunFromCheckpoint(t *testing.T) {
	if problem := criuProblem(t); problem != "" {
		t.Skipf("criu check fails on this kernel, so CRIU can neither checkpoint nor restore here: %s", problem)
	}
	forEachDaemonAndRuntime(t, func(t *testing.T, s *session) {
		container, task, exitCh, _ := s.startCounter(t, "ctr-counter")
		result := s.daemon.Ctr(t, s.ns, "task", "checkpoint", container.ID())
		if result.ExitCode != 0 {
			t.Fatalf("ctr task checkpoint: %s", result.Stderr)
		}
		name := strings.TrimSpace(string(result.Stdout))
		if status, err := task.Status(s.ctx); err != nil || status.Status != client.Running {
			t.Fatalf("container after checkpoint: %v, %v; want running", status.Status, err)
		}
		if err := task.Kill(s.ctx, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		deleteTask(t, s.ctx, task, exitCodeOf(t, exitCh))

		restoredID := "ctr-counter-restored"
		result = s.daemon.Ctr(t, s.ns, "run", "--rm", "--runtime", s.runtime, "--fifo-dir", s.daemon.FIFODir,
			"--checkpoint", name, harness.BusyboxImage, restoredID)
		if result.ExitCode != 7 {
			t.Errorf("ctr run --checkpoint exited %d, want the counter's 7; stderr:\n%s", result.ExitCode, result.Stderr)
		}
		lines := strings.Fields(string(result.Stdout))
		if len(lines) == 0 || lines[0] == "0" || lines[len(lines)-1] != "99" {
			t.Errorf("restored counter printed %q; want it to go on from the checkpoint to 99", lines)
		}
		s.daemon.AssertNoContainerTraces(t, s.ns, restoredID)
	})
}

// withCheckpointExit is ctr task checkpoint --exit: the container stops once
// it is saved.
func withCheckpointExit(info *client.CheckpointTaskInfo) error {
	info.Options = &options.CheckpointOptions{Exit: true}
	return nil
}

// waitUntilPrinted waits until the container's stdout so far contains want.
func waitUntilPrinted(t *testing.T, streams *stdio, want string) {
	t.Helper()
	harness.Eventually(t, time.Minute, fmt.Sprintf("the container to print %q", want), func() error {
		if !strings.Contains(streams.stdout.String(), want) {
			return errors.New("not yet")
		}
		return nil
	})
}

// assertCountGoesOn checks that the restored counter printed the numbers
// after the last one printed before the checkpoint, up to 99.
func assertCountGoesOn(t *testing.T, before, after string) {
	t.Helper()
	saved, restored := strings.Fields(before), strings.Fields(after)
	if len(saved) == 0 || len(restored) == 0 {
		t.Fatalf("counter printed %q before the checkpoint and %q after", saved, restored)
	}
	last, _ := strconv.Atoi(saved[len(saved)-1])
	for i, line := range restored {
		if line != strconv.Itoa(last+1+i) {
			t.Fatalf("before the checkpoint the counter reached %d; restored, it printed %q", last, restored)
		}
	}
	if restored[len(restored)-1] != "99" {
		t.Errorf("restored counter stopped at %s, want 99", restored[len(restored)-1])
	}
}
