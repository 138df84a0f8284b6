package shim

import (
	"testing"

	"github.com/containerd/containerd/v2/core/runtime"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-spec/specs-go/features"
)

// The names the shim shares with containerd, written out in the shim rather
// than imported from containerd's core/runtime (topics.go, options.go), are
// containerd's. This test imports core/runtime, which registers the OCI
// types with typeurl as it loads: the shim itself must not rely on that.

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

func TestSpecTypeURLsAreContainerds(t *testing.T) {
	for ours, value := range map[string]any{
		processTypeURL:        &specs.Process{},
		linuxResourcesTypeURL: &specs.LinuxResources{},
		featuresTypeURL:       &features.Features{},
	} {
		containerds, err := typeurl.TypeURL(value)
		if err != nil {
			t.Fatalf("containerd registers no type URL for %T: %v", value, err)
		}
		if ours != containerds {
			t.Errorf("type URL %q for %T, containerd's is %q", ours, value, containerds)
		}
	}
}
