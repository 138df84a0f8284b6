package shim

// The topics of the task events, as containerd names them (its
// core/runtime package). containerd routes and filters events by topic; the
// event's type says what happened, the topic where it is published.
//
// They are written out here rather than imported: core/runtime is
// containerd's side of the shim API, and importing it for ten strings links
// its mount, namespaces and runtime-spec packages into every shim (33 KB of
// binary, resident in each idle shim; docs/benchmarks.md, History).
// TestTopicsAreContainerds checks them against containerd's.
const (
	topicTaskCreate       = "/tasks/create"
	topicTaskStart        = "/tasks/start"
	topicTaskOOM          = "/tasks/oom"
	topicTaskExit         = "/tasks/exit"
	topicTaskDelete       = "/tasks/delete"
	topicTaskExecAdded    = "/tasks/exec-added"
	topicTaskExecStarted  = "/tasks/exec-started"
	topicTaskPaused       = "/tasks/paused"
	topicTaskResumed      = "/tasks/resumed"
	topicTaskCheckpointed = "/tasks/checkpointed"
)
