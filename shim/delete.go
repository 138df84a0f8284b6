package shim

import (
	"context"
	"fmt"

	"github.com/containerd/errdefs"

	"github.com/teach/containerd-shim-teach-v2/process"
)

// deleteContainer deletes a container's init, and the container with it.
//
// containerd may send two Deletes of one container at once: when a pod
// sandbox fails to start (an NRI plugin refuses it, say), the CRI's cleanup
// and its exit monitor both delete the sandbox's task. The second must not
// be answered before the first is done. On its answer containerd shuts the
// shim down and closes the connection, and the first Delete, still running,
// would lose its answer ("ttrpc: closed"): containerd would then mark the
// pod SANDBOX_UNKNOWN, for a person to remove. So the second waits for the
// first, then answers as a Delete sent after it: NotFound if the first
// deleted the container, or it deletes the container itself if the first
// failed.
func (s *TaskService) deleteContainer(ctx context.Context, c *Container) (process.ExitStatus, error) {
	for {
		done, first := s.beginDelete(c.ID)
		if first {
			exit, err := c.Delete(ctx, "")
			s.endDelete(c.ID, err == nil)
			return exit, err
		}
		select {
		case <-done:
		case <-ctx.Done():
			return process.ExitStatus{}, fmt.Errorf("waiting for another Delete of container %s: %w", c.ID, ctx.Err())
		}
		if now, err := s.container(c.ID); err != nil || now != c {
			return process.ExitStatus{}, fmt.Errorf("container %s was already deleted: %w", c.ID, errdefs.ErrNotFound)
		}
	}
}

// beginDelete marks container id as being deleted. first is false when
// another Delete already is; done closes when that one ends.
func (s *TaskService) beginDelete(id string) (done chan struct{}, first bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if done, ok := s.deleting[id]; ok {
		return done, false
	}
	done = make(chan struct{})
	s.deleting[id] = done
	return done, true
}

// endDelete ends the Delete beginDelete began, and forgets the container
// if it was deleted, before any Delete waiting on it goes on.
func (s *TaskService) endDelete(id string, deleted bool) {
	s.mu.Lock()
	if deleted {
		delete(s.containers, id)
	}
	done := s.deleting[id]
	delete(s.deleting, id)
	s.mu.Unlock()
	close(done)
}
