package shim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	eventsapi "github.com/containerd/containerd/api/services/ttrpc/events/v1"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/containerd/v2/core/events"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/protobuf"
	"github.com/containerd/log"
	"github.com/containerd/ttrpc"
	"github.com/containerd/typeurl/v2"
)

// eventForwarder hands events to containerd: it calls Forward on
// containerd's ttrpc events service, at the address containerd gave the
// shim in TTRPC_ADDRESS. containerd then publishes each event to its
// subscribers (clients' Wait, the CRI plugin, docker) as if it were its own.
//
// It dials containerd's unix socket itself (net.DialUnix) rather than
// through containerd's ttrpcutil: that one dials with net.DialTimeout,
// whose name resolution links Go's whole DNS resolver into the binary
// (0.23 MB, resident in every shim; docs/benchmarks.md, History).
type eventForwarder struct {
	address string // containerd's ttrpc socket

	mu     sync.Mutex
	client *ttrpc.Client // guarded by mu; nil until the first event, and after containerd closed it
}

const (
	// forwardTimeout bounds one Forward call, so a containerd that does
	// not answer cannot hold the shim's events forever.
	forwardTimeout = 5 * time.Second
	// forwardAttempts: a failed Forward is tried again after 1s, 2s, 3s…,
	// which spans a containerd restart; then the event is dropped.
	forwardAttempts = 6
)

// newEventForwarder makes the forwarder for containerd's events service at
// ttrpcAddress. It dials nothing yet: the first event connects.
func newEventForwarder(ttrpcAddress string) (*eventForwarder, error) {
	return &eventForwarder{address: strings.TrimPrefix(ttrpcAddress, "unix://")}, nil
}

// Publish forwards one event, retrying until it is through or the attempts
// are spent. It blocks meanwhile: EventSink calls it from its one sender, so
// the events that follow wait, and containerd still gets them in order.
func (f *eventForwarder) Publish(ctx context.Context, topic string, event events.Event) error {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return err
	}
	payload, err := typeurl.MarshalAnyToProto(event)
	if err != nil {
		return fmt.Errorf("encode %s event: %w", topic, err)
	}
	req := &eventsapi.ForwardRequest{Envelope: &types.Envelope{
		Timestamp: protobuf.ToTimestamp(time.Now()),
		Namespace: ns,
		Topic:     topic,
		Event:     payload,
	}}
	for attempt := 1; ; attempt++ {
		err = f.forward(ctx, req)
		if err == nil || attempt == forwardAttempts || ctx.Err() != nil {
			return err
		}
		log.G(ctx).WithError(err).WithField("topic", topic).Warnf("forward event, attempt %d of %d", attempt, forwardAttempts)
		select {
		case <-time.After(time.Duration(attempt) * time.Second):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// forward makes one Forward call. A connection that containerd closed (it
// restarted) is replaced, and the call made once more at once.
func (f *eventForwarder) forward(ctx context.Context, req *eventsapi.ForwardRequest) error {
	err := f.call(ctx, req)
	if errors.Is(err, ttrpc.ErrClosed) {
		f.disconnect()
		err = f.call(ctx, req)
	}
	return err
}

func (f *eventForwarder) call(ctx context.Context, req *eventsapi.ForwardRequest) error {
	client, err := f.connect()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, forwardTimeout)
	defer cancel()
	_, err = eventsapi.NewTTRPCEventsClient(client).Forward(ctx, req)
	return err
}

// connect returns the connection to containerd, dialing it if there is none.
// Connecting to a unix socket does not wait: a socket that is missing
// (containerd restarting) or whose queue is full fails at once, and Publish
// tries again later.
func (f *eventForwarder) connect() (*ttrpc.Client, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.client == nil {
		conn, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: f.address, Net: "unix"})
		if err != nil {
			return nil, fmt.Errorf("connect to containerd's events service: %w", err)
		}
		f.client = ttrpc.NewClient(conn)
	}
	return f.client, nil
}

// disconnect closes the connection, so that the next call dials again.
func (f *eventForwarder) disconnect() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.client != nil {
		f.client.Close()
		f.client = nil
	}
}

func (f *eventForwarder) Close() error {
	f.disconnect()
	return nil
}
