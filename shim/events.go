package shim

import (
	"context"
	"sync"

	"github.com/containerd/containerd/v2/core/events"
	"github.com/containerd/log"
)

// EventSink sends the shim's task events to containerd. containerd learns of
// a task's exit only from TaskExit: its Wait answer to clients, docker's
// "container exited" and the kubelet's container status all come from here.
//
// Sending can take seconds (the forwarder waits up to 5s for a containerd
// that is not answering, and retries), and no RPC may wait on containerd
// being reachable. So Publish only queues; one goroutine sends, in the order
// the events were queued.
type EventSink struct {
	// ctx carries the containerd namespace the events belong to. Events
	// are sent with it, not with a request's context, because an exit is
	// published long after the request that started the process returned.
	ctx       context.Context
	publisher events.Publisher
	// order checks the sequence as it is queued, which is the order
	// containerd receives it in.
	order *OrderChecker

	mu      sync.Mutex
	pending []queuedEvent // guarded by mu
	sending bool          // guarded by mu: the sender holds an event
	held    bool          // guarded by mu: an upgrade holds the queue (upgrade.go)
	wake    chan struct{}
	idle    *sync.Cond // signalled when pending is empty and nothing is sending
}

type queuedEvent struct {
	topic string
	event events.Event
}

// NewEventSink starts the goroutine that sends queued events to publisher,
// one at a time, for as long as ctx lives.
func NewEventSink(ctx context.Context, publisher events.Publisher) *EventSink {
	e := &EventSink{ctx: ctx, publisher: publisher, order: NewOrderChecker(), wake: make(chan struct{}, 1)}
	e.idle = sync.NewCond(&e.mu)
	go e.send()
	return e
}

// Publish queues one event for containerd. An event out of containerd's order
// is still sent (containerd may cope; dropping it would lose an exit) but is
// logged as an error.
func (e *EventSink) Publish(topic string, event events.Event) {
	e.mu.Lock()
	e.pending = append(e.pending, queuedEvent{topic, event})
	violations := e.order.Observe(event)
	e.mu.Unlock()
	for _, v := range violations {
		log.G(e.ctx).WithFields(log.Fields{"id": v.Container, "event": v.Event, "topic": topic}).
			Errorf("event order violation: %s", v)
	}
	e.wakeSender()
}

// send is the sender goroutine; it lives as long as the shim.
func (e *EventSink) send() {
	for range e.wake {
		for {
			e.mu.Lock()
			if len(e.pending) == 0 || e.held {
				e.sending = false
				e.idle.Broadcast()
				e.mu.Unlock()
				break
			}
			next := e.pending[0]
			e.pending = e.pending[1:]
			e.sending = true
			e.mu.Unlock()
			// The publisher has retried already: the event is lost.
			if err := e.publisher.Publish(e.ctx, next.topic, next.event); err != nil {
				log.G(e.ctx).WithError(err).WithField("topic", next.topic).Error("event not delivered to containerd")
			}
		}
	}
}

// Flush waits until every queued event has been handed to containerd (or
// given up on), or ctx ends. The shim flushes before it exits,
// so the TaskDelete of its last container is not lost.
func (e *EventSink) Flush(ctx context.Context) {
	stop := context.AfterFunc(ctx, func() {
		e.mu.Lock()
		e.idle.Broadcast()
		e.mu.Unlock()
	})
	defer stop()
	e.mu.Lock()
	defer e.mu.Unlock()
	for (len(e.pending) > 0 || e.sending) && ctx.Err() == nil {
		e.idle.Wait()
	}
}

// hold stops sending, once the event on its way (if any) is delivered: the
// queue is then the shim's to hand over (upgrade.go). Publish still queues.
func (e *EventSink) hold() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.held = true
	for e.sending {
		e.idle.Wait()
	}
}

// release undoes hold: the upgrade was called off.
func (e *EventSink) release() {
	e.mu.Lock()
	e.held = false
	e.mu.Unlock()
	e.wakeSender()
}

// queued is what is waiting to be sent. Held: hold.
func (e *EventSink) queued() []queuedEvent {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]queuedEvent(nil), e.pending...)
}

func (e *EventSink) wakeSender() {
	select {
	case e.wake <- struct{}{}:
	default: // the sender is already awake
	}
}

// requeue queues an event an earlier shim handed over (an upgrade): its
// order was checked when that shim queued it.
func (e *EventSink) requeue(topic string, event events.Event) {
	e.mu.Lock()
	e.pending = append(e.pending, queuedEvent{topic, event})
	e.mu.Unlock()
	e.wakeSender()
}
