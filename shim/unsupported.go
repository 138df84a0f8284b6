package shim

import (
	"context"
	"fmt"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/types/known/emptypb"
)

// The task API calls below are not served yet. Each answers NotImplemented,
// the kind containerd and its clients understand as "this runtime cannot".

func notYet(operation, id string) error {
	return fmt.Errorf("%s on %s: io.containerd.teach.v2 does not support %s yet: %w", operation, id, operation, errdefs.ErrNotImplemented)
}

func (s *TaskService) Checkpoint(ctx context.Context, req *taskAPI.CheckpointTaskRequest) (*emptypb.Empty, error) {
	return nil, notYet("checkpoint", req.ID)
}
