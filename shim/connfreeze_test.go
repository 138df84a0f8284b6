package shim

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/containerd/ttrpc"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// A freeze waits for every request but Wait to be answered, and hands the
// unanswered Wait over, whole, to be read again; a thaw lets the old server
// answer it after all. A request sent while frozen stays in the socket and
// is served after the thaw.
func TestFreezeKeepsWaitForTheNextShim(t *testing.T) {
	exited := make(chan struct{})
	_, listener, client := serveTestTask(t, map[string]ttrpc.Method{
		"Wait": method(func(ctx context.Context, req *wrapperspb.StringValue) (*emptypb.Empty, error) {
			<-exited
			return &emptypb.Empty{}, nil
		}),
		"State": method(func(ctx context.Context, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
			return wrapperspb.String("running " + req.GetValue()), nil
		}),
	})
	call := func(method, arg string) (string, error) {
		var resp wrapperspb.StringValue
		err := client.Call(context.Background(), "containerd.task.v3.Task", method, wrapperspb.String(arg), &resp)
		return resp.GetValue(), err
	}
	if got, err := call("State", "before"); err != nil || got != "running before" {
		t.Fatalf("State before the freeze: %q, %v", got, err)
	}
	waited := make(chan error, 1)
	go func() {
		var resp emptypb.Empty
		waited <- client.Call(context.Background(), "containerd.task.v3.Task", "Wait", wrapperspb.String("c"), &resp)
	}()
	for !waitInFlight(listener.freezer) {
		time.Sleep(time.Millisecond)
	}

	if err := listener.freezer.freeze(); err != nil {
		t.Fatal(err)
	}
	handed := listener.freezer.handover()
	if len(handed) != 1 {
		t.Fatalf("%d connections handed over, want 1", len(handed))
	}
	service, method := requestMethod(handed[0].Replay)
	if service != "containerd.task.v3.Task" || method != "Wait" {
		t.Fatalf("handed over a request for %s/%s, want the Wait", service, method)
	}
	stateDuringFreeze := make(chan string, 1)
	go func() {
		got, _ := call("State", "during")
		stateDuringFreeze <- got
	}()

	listener.freezer.thaw()
	close(exited)
	if err := <-waited; err != nil {
		t.Fatalf("Wait after the thaw: %v", err)
	}
	if got := <-stateDuringFreeze; got != "running during" {
		t.Fatalf("State sent during the freeze answered %q", got)
	}
}

// waitInFlight: the server has read a Wait it has not answered.
func waitInFlight(f *connFreezer) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for c := range f.conns {
		for _, frame := range c.inflight {
			if _, method := requestMethod(frame); method == "Wait" {
				return true
			}
		}
	}
	return false
}

// ttrpc's Shutdown closes a connection that looked idle when its loop last
// looked, even if a request came since and is being served. The exiting
// shim first waits for every answer (awaitAnswered): a Delete served while
// the shim leaves gets its answer, not "ttrpc: closed". (The pause before
// the Delete's handler returns only gives a shim that does not wait the
// time to close the connection; one that waits passes however long it is.)
func TestAnExitingShimAnswersWhatItRead(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	server, listener, client := serveTestTask(t, map[string]ttrpc.Method{
		"Delete": method(func(ctx context.Context, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
			close(entered)
			<-release
			return wrapperspb.String("deleted " + req.GetValue()), nil
		}),
	})

	answered := make(chan error, 1)
	go func() {
		var resp wrapperspb.StringValue
		err := client.Call(context.Background(), "containerd.task.v3.Task", "Delete", wrapperspb.String("c2"), &resp)
		if err == nil && resp.GetValue() != "deleted c2" {
			err = fmt.Errorf("answer %q", resp.GetValue())
		}
		answered <- err
	}()
	<-entered
	exited := make(chan struct{})
	go func() { // the shim leaves, as runServer does
		listener.freezer.awaitAnswered(time.Minute)
		server.Shutdown(context.Background())
		close(exited)
	}()
	time.Sleep(100 * time.Millisecond)
	close(release)
	if err := <-answered; err != nil {
		t.Fatalf("the Delete served while the shim left: %v", err)
	}
	<-exited
}

// serveTestTask serves methods as the task service on a socket of the
// test's, through the shim's connection limiter, and dials it.
func serveTestTask(t *testing.T, methods map[string]ttrpc.Method) (*ttrpc.Server, *connectionLimiter, *ttrpc.Client) {
	t.Helper()
	socket := filepath.Join(t.TempDir(), "s")
	inner, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	listener := limitConnections(inner)
	server, err := ttrpc.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	server.RegisterService("containerd.task.v3.Task", &ttrpc.ServiceDesc{Methods: methods})
	go server.Serve(context.Background(), listener)
	t.Cleanup(func() { server.Close() })
	conn, err := net.Dial("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	client := ttrpc.NewClient(conn)
	t.Cleanup(func() { client.Close() })
	return server, listener, client
}
