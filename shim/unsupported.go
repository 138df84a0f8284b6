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

func (s *TaskService) Exec(ctx context.Context, req *taskAPI.ExecProcessRequest) (*emptypb.Empty, error) {
	return nil, notYet("exec", req.ID)
}

func (s *TaskService) ResizePty(ctx context.Context, req *taskAPI.ResizePtyRequest) (*emptypb.Empty, error) {
	return nil, notYet("resize pty", req.ID)
}

func (s *TaskService) CloseIO(ctx context.Context, req *taskAPI.CloseIORequest) (*emptypb.Empty, error) {
	return nil, notYet("close io", req.ID)
}

func (s *TaskService) Pause(ctx context.Context, req *taskAPI.PauseRequest) (*emptypb.Empty, error) {
	return nil, notYet("pause", req.ID)
}

func (s *TaskService) Resume(ctx context.Context, req *taskAPI.ResumeRequest) (*emptypb.Empty, error) {
	return nil, notYet("resume", req.ID)
}

func (s *TaskService) Checkpoint(ctx context.Context, req *taskAPI.CheckpointTaskRequest) (*emptypb.Empty, error) {
	return nil, notYet("checkpoint", req.ID)
}

func (s *TaskService) Update(ctx context.Context, req *taskAPI.UpdateTaskRequest) (*emptypb.Empty, error) {
	return nil, notYet("update", req.ID)
}

func (s *TaskService) Stats(ctx context.Context, req *taskAPI.StatsRequest) (*taskAPI.StatsResponse, error) {
	return nil, notYet("stats", req.ID)
}
