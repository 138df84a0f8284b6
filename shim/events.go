package shim

import (
	"context"

	"github.com/containerd/containerd/v2/core/events"
	"github.com/containerd/log"
)

// EventSink sends the shim's task events to containerd. containerd learns of
// a task's exit only from TaskExit: its Wait answer to clients, docker's
// "container exited" and the kubelet's container status all come from here.
type EventSink struct {
	// ctx carries the containerd namespace the events belong to. Events
	// are sent with it, not with a request's context, because an exit is
	// published long after the request that started the process returned.
	ctx       context.Context
	publisher events.Publisher
}

// Publish sends one event. pkg/shim's publisher retries a failed send from a
// queue, so an event raised while containerd is down reaches it once it is
// back; the failure is only logged here.
func (e *EventSink) Publish(topic string, event events.Event) {
	if err := e.publisher.Publish(e.ctx, topic, event); err != nil {
		log.G(e.ctx).WithError(err).WithField("topic", topic).Warn("publish event (queued for retry)")
	}
}
