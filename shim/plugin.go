package shim

import (
	"context"
	"fmt"

	taskv2 "github.com/containerd/containerd/api/runtime/task/v2"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/shutdown"
	"github.com/containerd/containerd/v2/plugins"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/plugin"
	"github.com/containerd/plugin/registry"
	"github.com/containerd/ttrpc"

	"github.com/containerd/containerd/v2/core/events"
)

// registerTaskService plugs the task service into pkg/shim's server. pkg/shim
// provides the event publisher (to containerd's TTRPC_ADDRESS) and the
// shutdown service; it serves whatever ttrpc services its plugins register.
func registerTaskService() {
	registry.Register(&plugin.Registration{
		Type:     plugins.TTRPCPlugin,
		ID:       "task",
		Requires: []plugin.Type{plugins.EventPlugin, plugins.InternalPlugin},
		InitFn: func(ic *plugin.InitContext) (any, error) {
			publisher, err := ic.GetByID(plugins.EventPlugin, "publisher")
			if err != nil {
				return nil, err
			}
			sd, err := ic.GetByID(plugins.InternalPlugin, "shutdown")
			if err != nil {
				return nil, err
			}
			ns, err := namespaces.NamespaceRequired(ic.Context)
			if err != nil {
				return nil, fmt.Errorf("shim started without a namespace: %w", err)
			}
			sink := NewEventSink(ic.Context, publisher.(events.Publisher))
			return taskServices{NewTaskService(ns, sink, sd.(shutdown.Service))}, nil
		},
	})
}

// taskServices registers the one TaskService under both names containerd may
// call it by: containerd.task.v3.Task (containerd 2.x) and
// containerd.task.v2.Task (containerd 1.7).
type taskServices struct{ v3 *TaskService }

func (t taskServices) RegisterTTRPC(server *ttrpc.Server) error {
	taskAPI.RegisterTTRPCTaskService(server, t.v3)
	taskv2.RegisterTTRPCTaskService(server, taskServiceV2{t.v3})
	return nil
}

// UnaryServerInterceptor turns the errors the task service returns into
// gRPC status codes. ttrpc sends a plain Go error as "Unknown"; containerd
// reads the code to tell NotFound from FailedPrecondition, so every error
// crosses the RPC boundary here, once, with its errdefs kind as its code.
//
// Each request is recorded in the journal on its way (journal.go).
func (t taskServices) UnaryServerInterceptor() ttrpc.UnaryServerInterceptor {
	return func(ctx context.Context, unmarshal ttrpc.Unmarshaler, info *ttrpc.UnaryServerInfo, method ttrpc.Method) (any, error) {
		resp, err := t.v3.journals.journalRPC(ctx, unmarshal, info, method)
		return resp, errgrpc.ToGRPC(err)
	}
}
