package shim

import (
	"context"
	"os"
	"testing"
	"testing/synctest"
	"time"

	eventstypes "github.com/containerd/containerd/api/events"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v2"
	"github.com/containerd/containerd/v2/core/events"
	"github.com/containerd/containerd/v2/core/runtime"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/shutdown"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/ttrpc"

	"github.com/teach/containerd-shim-teach-v2/observe"
)

// newTestService is a task service as the shim server builds it, with
// nothing watching it and no containerd to send events to.
func newTestService(t *testing.T) (*TaskService, shutdown.Service) {
	t.Helper()
	ctx, sd := shutdown.WithShutdown(namespaces.WithNamespace(context.Background(), "test"))
	t.Cleanup(sd.Shutdown)
	return NewTaskService("test", NewEventSink(ctx, &recordedEvents{}), sd, observe.Nop{}), sd
}

// A TaskService needs neither a shim server nor a journal: built with the
// no-op observer, it refuses a bad Create, answers for containers it does
// not have as containerd expects, and leaves when asked while it has none.
func TestTaskServiceWithTheNopObserver(t *testing.T) {
	s, sd := newTestService(t)
	ctx := t.Context()

	if _, err := s.Create(ctx, &taskAPI.CreateTaskRequest{ID: "no/slashes", Bundle: t.TempDir()}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("Create with a bad id: %v; want InvalidArgument", err)
	}
	if _, err := s.Create(ctx, &taskAPI.CreateTaskRequest{ID: "c1", Bundle: t.TempDir()}); !errdefs.IsNotFound(err) {
		t.Errorf("Create with a bundle without config.json: %v; want NotFound", err)
	}
	if len(s.containers) != 0 || len(s.creating) != 0 {
		t.Errorf("after two failed Creates the service holds %d containers and %d creations", len(s.containers), len(s.creating))
	}

	for name, call := range map[string]func() error{
		"State":  func() error { _, err := s.State(ctx, &taskAPI.StateRequest{ID: "c1"}); return err },
		"Start":  func() error { _, err := s.Start(ctx, &taskAPI.StartRequest{ID: "c1"}); return err },
		"Kill":   func() error { _, err := s.Kill(ctx, &taskAPI.KillRequest{ID: "c1", Signal: 9}); return err },
		"Wait":   func() error { _, err := s.Wait(ctx, &taskAPI.WaitRequest{ID: "c1"}); return err },
		"Delete": func() error { _, err := s.Delete(ctx, &taskAPI.DeleteRequest{ID: "c1"}); return err },
		"Pids":   func() error { _, err := s.Pids(ctx, &taskAPI.PidsRequest{ID: "c1"}); return err },
	} {
		if err := call(); !errdefs.IsNotFound(err) {
			t.Errorf("%s of an unknown container: %v; want NotFound", name, err)
		}
	}

	connected, err := s.Connect(ctx, &taskAPI.ConnectRequest{ID: "c1"})
	if err != nil || connected.ShimPid != uint32(os.Getpid()) || connected.TaskPid != 0 {
		t.Errorf("Connect: %+v, %v; want this process's pid and no task", connected, err)
	}

	// Shutdown of a service with no container ends the shim: its
	// shutdown's callbacks run, and then Done closes.
	if _, err := s.Shutdown(ctx, &taskAPI.ShutdownRequest{ID: "c1"}); err != nil {
		t.Fatal(err)
	}
	<-sd.Done()
}

// With the no-op observer, a request still crosses the RPC boundary once:
// the interceptor hands it to the service, and its error reaches containerd
// with its errdefs kind as the gRPC code.
func TestRequestsPassTheNopObserverOnce(t *testing.T) {
	s, _ := newTestService(t)
	intercept := taskServices{s}.UnaryServerInterceptor()
	calls := 0
	method := func(ctx context.Context, decode func(any) error) (any, error) {
		calls++
		var req taskAPI.StateRequest
		if err := decode(&req); err != nil {
			return nil, err
		}
		return s.State(ctx, &req)
	}
	decode := func(req any) error {
		req.(*taskAPI.StateRequest).ID = "c1"
		return nil
	}
	_, err := intercept(t.Context(), decode, &ttrpc.UnaryServerInfo{FullMethod: "/containerd.task.v3.Task/State"}, method)
	if calls != 1 {
		t.Fatalf("the service was called %d times", calls)
	}
	if native := errgrpc.ToNative(err); native == err || !errdefs.IsNotFound(native) {
		t.Fatalf("State of an unknown container: %v; want a gRPC status that says NotFound", err)
	}
}

// stuckPublisher is a containerd that takes an event and does not answer
// until released.
type stuckPublisher struct {
	took, release chan struct{}
}

func (p *stuckPublisher) Publish(ctx context.Context, topic string, event events.Event) error {
	p.took <- struct{}{}
	<-p.release
	return nil
}

// containerd waits only seconds for Shutdown's answer, then fails the
// Delete. The answer must not wait for the events still on their way: with
// one stuck in containerd, Shutdown answers at once, and the shim is told to
// end (its server then waits for the events, runServer).
//
// In a synctest bubble the clock moves only when every goroutine waits: a
// Shutdown that waited for the event, however briefly it meant to, would
// come back with the bubble's clock moved on.
func TestShutdownAnswersWithAnEventStillOnItsWay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, sd := shutdown.WithShutdown(namespaces.WithNamespace(context.Background(), "test"))
		publisher := &stuckPublisher{took: make(chan struct{}), release: make(chan struct{})}
		sink := NewEventSink(ctx, publisher)
		s := NewTaskService("test", sink, sd, observe.Nop{})
		defer func() {
			close(publisher.release)
			synctest.Wait()
			close(sink.wake)
		}()

		sink.Publish(runtime.TaskDeleteEventTopic, &eventstypes.TaskDelete{ContainerID: "c1"})
		<-publisher.took // the TaskDelete is in containerd's hands, unanswered
		asked := time.Now()
		if _, err := s.Shutdown(ctx, &taskAPI.ShutdownRequest{ID: "c1"}); err != nil {
			t.Fatal(err)
		}
		if waited := time.Since(asked); waited != 0 {
			t.Errorf("Shutdown answered after waiting %v for an event; want at once", waited)
		}
		<-sd.Done()
	})
}
