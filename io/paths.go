// Package stdio carries a container process's standard streams between the
// process and containerd.
//
// containerd hands the shim one FIFO path per stream. The shim does not give
// those FIFOs to the container directly: it gives it pipes, and relays between
// pipes and FIFOs. Owning the FIFO ends is what lets a container keep writing
// while containerd is stopped or restarting, and lets the shim know when a
// process's output has been fully delivered.
package stdio

import "github.com/teach/containerd-shim-teach-v2/observe"

// Paths are the FIFOs containerd created for one process, or for stdout and
// stderr a binary://, binary-v2:// or file:// URI (see logger.go). An empty path means the
// stream is not wanted: the process gets /dev/null for it.
type Paths struct {
	Stdin    string
	Stdout   string
	Stderr   string
	Terminal bool
	Owner    Owner
	// IOUid and IOGid own the pipes (runc options IoUid/IoGid): a
	// container process running as another user, or in a user namespace,
	// can then reopen its own stdio (/dev/stdout, /proc/self/fd/1).
	IOUid, IOGid int
	// Observer is told of the streams opened and closed: the process's
	// (observe.Nop watches nothing).
	Observer observe.Observer
}

// Owner is the container a process belongs to; a logging program is told.
type Owner struct {
	ContainerID string
	Namespace   string
}
