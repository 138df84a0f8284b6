package shim

import (
	"context"
	"strings"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v2"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/ttrpc"
	"google.golang.org/protobuf/proto"
)

// taskServices registers the one TaskService under both names containerd may
// call it by: containerd.task.v3.Task (containerd 2.x) and
// containerd.task.v2.Task (containerd 1.7).
//
// The two APIs declare the same messages with the same field numbers (v3 was
// cut from v2 for containerd 2.0; only the protobuf package differs, which is
// never on the wire), so the v2 message types decode a v3 request exactly:
// the service is written against the v2 types and registered twice. The v2
// package has ttrpc bindings only; the v3 package also carries gRPC bindings
// and with them gRPC, net/http and crypto/tls, which the shim does not link
// (docs/benchmarks.md, History). TestTaskAPIv3MatchesV2 holds the two
// declarations to each other.
type taskServices struct{ v3 *TaskService }

func (t taskServices) RegisterTTRPC(server *ttrpc.Server) error {
	taskAPI.RegisterTTRPCTaskService(server, t.v3)
	server.RegisterService("containerd.task.v3.Task", &ttrpc.ServiceDesc{Methods: map[string]ttrpc.Method{
		"State":      method(t.v3.State),
		"Create":     method(t.v3.Create),
		"Start":      method(t.v3.Start),
		"Delete":     method(t.v3.Delete),
		"Pids":       method(t.v3.Pids),
		"Pause":      method(t.v3.Pause),
		"Resume":     method(t.v3.Resume),
		"Checkpoint": method(t.v3.Checkpoint),
		"Kill":       method(t.v3.Kill),
		"Exec":       method(t.v3.Exec),
		"ResizePty":  method(t.v3.ResizePty),
		"CloseIO":    method(t.v3.CloseIO),
		"Update":     method(t.v3.Update),
		"Wait":       method(t.v3.Wait),
		"Stats":      method(t.v3.Stats),
		"Connect":    method(t.v3.Connect),
		"Shutdown":   method(t.v3.Shutdown),
	}})
	return nil
}

// method makes a ttrpc method of a TaskService method: decode the request
// into a new Req, call. It is what protoc-gen-go-ttrpc generates for each
// method, written once for all of them.
func method[Req any, PReq interface {
	*Req
	proto.Message
}, Resp proto.Message](call func(context.Context, PReq) (Resp, error)) ttrpc.Method {
	return func(ctx context.Context, unmarshal func(any) error) (any, error) {
		req := PReq(new(Req))
		if err := unmarshal(req); err != nil {
			return nil, err
		}
		return call(ctx, req)
	}
}

// UnaryServerInterceptor turns the errors the task service returns into
// gRPC status codes. ttrpc sends a plain Go error as "Unknown"; containerd
// reads the code to tell NotFound from FailedPrecondition, so every error
// crosses the RPC boundary here, once, with its errdefs kind as its code.
//
// The shim's observer sees each request on its way (observe.Observer.RPC).
func (t taskServices) UnaryServerInterceptor() ttrpc.UnaryServerInterceptor {
	return func(ctx context.Context, unmarshal ttrpc.Unmarshaler, info *ttrpc.UnaryServerInfo, method ttrpc.Method) (any, error) {
		name := info.FullMethod[strings.LastIndexByte(info.FullMethod, '/')+1:]
		resp, err := t.v3.observer.RPC(ctx, name, unmarshal, method)
		return resp, errgrpc.ToGRPC(err)
	}
}
