package shim

import (
	"testing"

	"github.com/containerd/containerd/v2/core/runtime"
)

func TestTopicsAreContainerds(t *testing.T) {
	for ours, containerds := range map[string]string{
		topicTaskCreate:       runtime.TaskCreateEventTopic,
		topicTaskStart:        runtime.TaskStartEventTopic,
		topicTaskOOM:          runtime.TaskOOMEventTopic,
		topicTaskExit:         runtime.TaskExitEventTopic,
		topicTaskDelete:       runtime.TaskDeleteEventTopic,
		topicTaskExecAdded:    runtime.TaskExecAddedEventTopic,
		topicTaskExecStarted:  runtime.TaskExecStartedEventTopic,
		topicTaskPaused:       runtime.TaskPausedEventTopic,
		topicTaskResumed:      runtime.TaskResumedEventTopic,
		topicTaskCheckpointed: runtime.TaskCheckpointedEventTopic,
	} {
		if ours != containerds {
			t.Errorf("topic %q, containerd's is %q", ours, containerds)
		}
	}
}
