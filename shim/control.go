package shim

import (
	"context"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v2"
	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/api/types/task"
	"github.com/containerd/typeurl/v2"
	"google.golang.org/protobuf/types/known/emptypb"
)

// The calls that act on a running container as a whole.

// Pause freezes every process of the container.
func (s *TaskService) Pause(ctx context.Context, req *taskAPI.PauseRequest) (*emptypb.Empty, error) {
	c, err := s.container(req.ID)
	if err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, c.Pause(ctx)
}

// Resume thaws a paused container.
func (s *TaskService) Resume(ctx context.Context, req *taskAPI.ResumeRequest) (*emptypb.Empty, error) {
	c, err := s.container(req.ID)
	if err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, c.Resume(ctx)
}

// Update applies new resource limits (docker update, kubelet resize).
func (s *TaskService) Update(ctx context.Context, req *taskAPI.UpdateTaskRequest) (*emptypb.Empty, error) {
	c, err := s.container(req.ID)
	if err != nil {
		return nil, err
	}
	resources, err := linuxResources(req.Resources)
	if err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, c.init.Update(ctx, resources)
}

// CloseIO closes a process's stdin, so it reads end-of-file.
func (s *TaskService) CloseIO(ctx context.Context, req *taskAPI.CloseIORequest) (*emptypb.Empty, error) {
	_, p, err := s.process(req.ID, req.ExecID)
	if err != nil {
		return nil, err
	}
	if req.Stdin {
		p.CloseIO()
	}
	return &emptypb.Empty{}, nil
}

// describePids labels each pid of the container with its exec id, when it
// is an exec process, as the stock runc shim does: `ctr task ps` shows it.
func (c *Container) describePids(pids []int) []*task.ProcessInfo {
	execOf := make(map[int]string)
	c.mu.Lock()
	for id, e := range c.execs {
		execOf[e.Pid()] = id
	}
	c.mu.Unlock()
	var infos []*task.ProcessInfo
	for _, pid := range pids {
		info := &task.ProcessInfo{Pid: uint32(pid)}
		if id, ok := execOf[pid]; ok && pid != 0 {
			if details, err := typeurl.MarshalAnyToProto(&options.ProcessDetails{ExecID: id}); err == nil {
				info.Info = details
			}
		}
		infos = append(infos, info)
	}
	return infos
}

// Stats returns the container's cgroup metrics (ctr task metrics, docker
// stats, the kubelet's summary API).
func (s *TaskService) Stats(ctx context.Context, req *taskAPI.StatsRequest) (*taskAPI.StatsResponse, error) {
	c, err := s.container(req.ID)
	if err != nil {
		return nil, err
	}
	metrics, err := c.Metrics()
	if err != nil {
		return nil, err
	}
	return &taskAPI.StatsResponse{Stats: metrics}, nil
}

// ResizePty sets the window size of a process's terminal: the client's own
// terminal was resized (SIGWINCH in ctr, docker, kubectl).
func (s *TaskService) ResizePty(ctx context.Context, req *taskAPI.ResizePtyRequest) (*emptypb.Empty, error) {
	_, p, err := s.process(req.ID, req.ExecID)
	if err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, p.Resize(req.Width, req.Height)
}

// Checkpoint saves the container with CRIU (ctr task checkpoint) and
// publishes TaskCheckpointed.
func (s *TaskService) Checkpoint(ctx context.Context, req *taskAPI.CheckpointTaskRequest) (*emptypb.Empty, error) {
	c, err := s.container(req.ID)
	if err != nil {
		return nil, err
	}
	cfg, err := checkpointConfig(req)
	if err != nil {
		return nil, err
	}
	// An upgrade is refused while CRIU works on a container (upgrade.go).
	s.checkpointing.Add(1)
	defer s.checkpointing.Add(-1)
	return &emptypb.Empty{}, c.Checkpoint(ctx, cfg)
}
