// Command librariesonly is the shim's libraries and nothing of the shim: the
// floor under its binary size and idle memory. `make bench` builds it as the
// shim is built and runs it idle beside the idle shims.
//
// It links the libraries the shim links from outside this repository
// (containerd's API types and ttrpc, go-runc, fifo, log, errdefs, typeurl,
// the cgroup metrics types, the OCI runtime spec), and does at start what any
// shim does before its first container: it serves the task API on a unix
// socket, holds a ttrpc connection to containerd for events, listens for
// SIGCHLD and SIGTERM, holds a FIFO open, and encodes and decodes the first
// messages of a container's life (which builds protobuf-go's tables for
// them). Then it waits for SIGTERM. It never runs runc and has no container.
//
//	librariesonly SOCKET CONTAINERD_TTRPC_ADDRESS FIFO
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"

	v1 "github.com/containerd/cgroups/v3/cgroup1/stats"
	v2 "github.com/containerd/cgroups/v3/cgroup2/stats"
	"github.com/containerd/containerd/api/events"
	task "github.com/containerd/containerd/api/runtime/task/v2"
	eventsapi "github.com/containerd/containerd/api/services/ttrpc/events/v1"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/fifo"
	runc "github.com/containerd/go-runc"
	"github.com/containerd/log"
	"github.com/containerd/ttrpc"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/proto"
)

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: librariesonly SOCKET CONTAINERD_TTRPC_ADDRESS FIFO")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2], os.Args[3]); err != nil {
		fmt.Fprintln(os.Stderr, "librariesonly:", err)
		os.Exit(1)
	}
}

func run(socket, containerd, fifoPath string) error {
	signals := make(chan os.Signal, 32)
	signal.Notify(signals, syscall.SIGCHLD, syscall.SIGTERM)
	log.L.Logger.SetOutput(io.Discard)

	server, err := ttrpc.NewServer()
	if err != nil {
		return err
	}
	task.RegisterTTRPCTaskService(server, noContainers{})
	listener, err := net.Listen("unix", socket)
	if err != nil {
		return err
	}
	go server.Serve(context.Background(), listener)

	conn, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: containerd, Net: "unix"})
	if err != nil {
		return err
	}
	// The connection a shim publishes its events on, held open as a shim holds it.
	events := ttrpc.NewClient(conn)
	defer events.Close()

	ctx := context.Background()
	stdout, err := fifo.OpenFifo(ctx, fifoPath, syscall.O_RDWR|syscall.O_CREAT|syscall.O_NONBLOCK, 0o600)
	if err != nil {
		return err
	}
	defer stdout.Close()

	if err := firstMessages(); err != nil {
		return err
	}
	log.G(ctx).WithField("socket", socket).WithField("linked", len(shimCalls)).Info("idle")
	for s := range signals {
		if s == syscall.SIGTERM {
			return nil
		}
	}
	return nil
}

// firstMessages encodes and decodes what a shim's first container brings:
// the Create request with runc's options, the OCI spec, the TaskCreate
// event in its envelope, and a metrics reply of each cgroup version. The
// event is built but not sent: containerd would act on it.
func firstMessages() error {
	opts, err := typeurl.MarshalAnyToProto(&options.Options{BinaryName: "runc"})
	if err != nil {
		return err
	}
	request, err := proto.Marshal(&task.CreateTaskRequest{ID: "c", Bundle: "/b", Options: opts,
		Rootfs: []*types.Mount{{Type: "overlay", Source: "overlay"}}})
	if err != nil {
		return err
	}
	var create task.CreateTaskRequest
	if err := proto.Unmarshal(request, &create); err != nil {
		return err
	}
	var runcOptions options.Options
	if err := typeurl.UnmarshalTo(create.Options, &runcOptions); err != nil {
		return err
	}
	var spec specs.Spec
	if err := json.Unmarshal([]byte(`{"ociVersion":"1.2.1","process":{"args":["sleep","1"],"cwd":"/"},"root":{"path":"rootfs"}}`), &spec); err != nil {
		return err
	}
	event, err := typeurl.MarshalAnyToProto(&events.TaskCreate{ContainerID: "c", Bundle: "/b", Pid: 1})
	if err != nil {
		return err
	}
	envelope := &eventsapi.ForwardRequest{Envelope: &types.Envelope{Namespace: "default", Topic: "/tasks/create", Event: event}}
	if _, err := proto.Marshal(envelope); err != nil {
		return err
	}
	for _, metrics := range []proto.Message{&v1.Metrics{}, &v2.Metrics{}} {
		if _, err := typeurl.MarshalAnyToProto(metrics); err != nil {
			return err
		}
	}
	return nil
}

// shimCalls are the calls a shim makes for its containers, to runc and to
// containerd's event service. They are linked, as in a shim, so the binary
// holds their code, but never made: this program has no container.
var shimCalls = []any{
	(*runc.Runc).Create, (*runc.Runc).Start, (*runc.Runc).Exec, (*runc.Runc).Kill,
	(*runc.Runc).Delete, (*runc.Runc).State, (*runc.Runc).Pause, (*runc.Runc).Resume,
	(*runc.Runc).Update, (*runc.Runc).Checkpoint, (*runc.Runc).Restore, (*runc.Runc).Ps,
	(*runc.Runc).Stats, (*runc.Runc).Events,
	eventsapi.NewTTRPCEventsClient, eventsapi.TTRPCEventsService.Forward,
}

// noContainers serves the task API only to link and register it as a shim
// does. State answers that there is no container; every other call would
// reach the nil interface it embeds, and nothing makes them.
type noContainers struct{ task.TTRPCTaskService }

func (noContainers) State(_ context.Context, r *task.StateRequest) (*task.StateResponse, error) {
	return nil, errgrpc.ToGRPC(fmt.Errorf("container %q: librariesonly runs no container: %w", r.ID, errdefs.ErrFailedPrecondition))
}
