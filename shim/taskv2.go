package shim

import (
	"context"

	taskv2 "github.com/containerd/containerd/api/runtime/task/v2"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"
)

// taskServiceV2 serves task API v2, which containerd 1.7 speaks, on top of the
// v3 TaskService. The two APIs declare the same messages with the same field
// numbers (v3 was cut from v2 for containerd 2.0), so a v2 request re-encoded
// as protobuf is a valid v3 request and back: one RPC implementation serves
// both generations of containerd on one socket.
type taskServiceV2 struct {
	v3 *TaskService
}

// viaV3 re-encodes a v2 request as its v3 twin, calls the v3 method, and
// re-encodes the answer as v2.
func viaV3[In3, Out2 any, PIn3 interface {
	*In3
	proto.Message
}, POut2 interface {
	*Out2
	proto.Message
}, Out3 proto.Message](ctx context.Context, req2 proto.Message, method func(context.Context, PIn3) (Out3, error)) (POut2, error) {
	req3 := PIn3(new(In3))
	if err := reencode(req2, req3); err != nil {
		return nil, err
	}
	resp3, err := method(ctx, req3)
	if err != nil {
		return nil, err
	}
	resp2 := POut2(new(Out2))
	return resp2, reencode(resp3, resp2)
}

func reencode(from, to proto.Message) error {
	data, err := proto.Marshal(from)
	if err != nil {
		return err
	}
	return proto.Unmarshal(data, to)
}

func (s taskServiceV2) State(ctx context.Context, req *taskv2.StateRequest) (*taskv2.StateResponse, error) {
	return viaV3[taskAPI.StateRequest, taskv2.StateResponse](ctx, req, s.v3.State)
}

func (s taskServiceV2) Create(ctx context.Context, req *taskv2.CreateTaskRequest) (*taskv2.CreateTaskResponse, error) {
	return viaV3[taskAPI.CreateTaskRequest, taskv2.CreateTaskResponse](ctx, req, s.v3.Create)
}

func (s taskServiceV2) Start(ctx context.Context, req *taskv2.StartRequest) (*taskv2.StartResponse, error) {
	return viaV3[taskAPI.StartRequest, taskv2.StartResponse](ctx, req, s.v3.Start)
}

func (s taskServiceV2) Delete(ctx context.Context, req *taskv2.DeleteRequest) (*taskv2.DeleteResponse, error) {
	return viaV3[taskAPI.DeleteRequest, taskv2.DeleteResponse](ctx, req, s.v3.Delete)
}

func (s taskServiceV2) Pids(ctx context.Context, req *taskv2.PidsRequest) (*taskv2.PidsResponse, error) {
	return viaV3[taskAPI.PidsRequest, taskv2.PidsResponse](ctx, req, s.v3.Pids)
}

func (s taskServiceV2) Pause(ctx context.Context, req *taskv2.PauseRequest) (*emptypb.Empty, error) {
	return viaV3[taskAPI.PauseRequest, emptypb.Empty](ctx, req, s.v3.Pause)
}

func (s taskServiceV2) Resume(ctx context.Context, req *taskv2.ResumeRequest) (*emptypb.Empty, error) {
	return viaV3[taskAPI.ResumeRequest, emptypb.Empty](ctx, req, s.v3.Resume)
}

func (s taskServiceV2) Checkpoint(ctx context.Context, req *taskv2.CheckpointTaskRequest) (*emptypb.Empty, error) {
	return viaV3[taskAPI.CheckpointTaskRequest, emptypb.Empty](ctx, req, s.v3.Checkpoint)
}

func (s taskServiceV2) Kill(ctx context.Context, req *taskv2.KillRequest) (*emptypb.Empty, error) {
	return viaV3[taskAPI.KillRequest, emptypb.Empty](ctx, req, s.v3.Kill)
}

func (s taskServiceV2) Exec(ctx context.Context, req *taskv2.ExecProcessRequest) (*emptypb.Empty, error) {
	return viaV3[taskAPI.ExecProcessRequest, emptypb.Empty](ctx, req, s.v3.Exec)
}

func (s taskServiceV2) ResizePty(ctx context.Context, req *taskv2.ResizePtyRequest) (*emptypb.Empty, error) {
	return viaV3[taskAPI.ResizePtyRequest, emptypb.Empty](ctx, req, s.v3.ResizePty)
}

func (s taskServiceV2) CloseIO(ctx context.Context, req *taskv2.CloseIORequest) (*emptypb.Empty, error) {
	return viaV3[taskAPI.CloseIORequest, emptypb.Empty](ctx, req, s.v3.CloseIO)
}

func (s taskServiceV2) Update(ctx context.Context, req *taskv2.UpdateTaskRequest) (*emptypb.Empty, error) {
	return viaV3[taskAPI.UpdateTaskRequest, emptypb.Empty](ctx, req, s.v3.Update)
}

func (s taskServiceV2) Wait(ctx context.Context, req *taskv2.WaitRequest) (*taskv2.WaitResponse, error) {
	return viaV3[taskAPI.WaitRequest, taskv2.WaitResponse](ctx, req, s.v3.Wait)
}

func (s taskServiceV2) Stats(ctx context.Context, req *taskv2.StatsRequest) (*taskv2.StatsResponse, error) {
	return viaV3[taskAPI.StatsRequest, taskv2.StatsResponse](ctx, req, s.v3.Stats)
}

func (s taskServiceV2) Connect(ctx context.Context, req *taskv2.ConnectRequest) (*taskv2.ConnectResponse, error) {
	return viaV3[taskAPI.ConnectRequest, taskv2.ConnectResponse](ctx, req, s.v3.Connect)
}

func (s taskServiceV2) Shutdown(ctx context.Context, req *taskv2.ShutdownRequest) (*emptypb.Empty, error) {
	return viaV3[taskAPI.ShutdownRequest, emptypb.Empty](ctx, req, s.v3.Shutdown)
}
