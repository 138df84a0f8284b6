package shim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/containerd/containerd/v2/pkg/identifiers"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/log"
	"github.com/containerd/ttrpc"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Shim grouping: one shim process may serve several containers. Kubernetes
// runs every container of a pod with the pod's sandbox id as an annotation;
// serving the whole pod from one shim saves a process, and its memory, per
// container. Any client can group its own containers with GroupAnnotation.
const (
	GroupAnnotation      = "io.containerd.teach.v2.group"
	CRISandboxAnnotation = "io.kubernetes.cri.sandbox-id"
)

// shimGroup names the shim a container belongs to: its group, read from the
// annotations of the bundle's config.json, or the container's own id when it
// has none (grouped is then false). A pod's sandbox names itself: its
// sandbox-id annotation is its own id. A config.json over the size Create
// accepts is not read: Create refuses the container anyway.
func shimGroup(bundle, containerID string) (group string, grouped bool) {
	data, err := readCapped(filepath.Join(bundle, "config.json"), maxBundleSpecSize)
	if err != nil {
		return containerID, false
	}
	var spec struct {
		Annotations map[string]string `json:"annotations"`
	}
	if json.Unmarshal(data, &spec) != nil {
		return containerID, false
	}
	for _, key := range []string{GroupAnnotation, CRISandboxAnnotation} {
		// The group names a socket; an unsafe value is ignored rather
		// than trusted.
		if group := spec.Annotations[key]; group != "" && identifiers.Validate(group) == nil {
			return group, true
		}
	}
	return containerID, false
}

// How the containers of a group find one shim, and never two.
//
// containerd runs one `start` per container, and a pod's containers may all
// be created at once, so several starts of a group run side by side, while
// the group's shim may be coming up, serving, or exiting after its last
// container. One lock per group makes each start's decision, and the shim's
// decision to exit, one step for all the others: the group lock, a flock on
// the file "<socket>.lock" next to the group's socket.
//
//   - A start takes the lock, then connects to the group's socket. A shim that
//     answers is joined: the start tells it, through the Join method of our
//     own Group service, that a container is on its way, and answers
//     containerd with its address. ECONNREFUSED or ENOENT means no shim
//     serves the group (a dead one left the file, or there is none): the
//     start removes the file, creates the socket, launches the shim, and only
//     then lets go of the lock. The next start finds the socket listening,
//     however slowly the shim comes up: the kernel queues the connection,
//     and Join waits in the socket until the shim serves.
//   - The shim decides to exit (Shutdown) under the lock, and only if it runs
//     no container and awaits none; it then removes its socket before it
//     stops listening, still under the lock. A start that comes later finds
//     no socket and launches a new shim.
//   - A joined container is awaited until containerd's Create for it arrives
//     (Create then counts it) or containerd calls Shutdown with its id, which
//     containerd does when it gives up on a task, a create that failed
//     included.
//
// Connecting waits as long as the kernel makes it (dialShim); no timer
// decides whether a shim is alive. A lock for the whole socket folder would
// need no file of its own, but would queue every pod's starts behind one
// another, and behind any one group's stuck shim. So each group has its lock
// file, which lives as long as the group's socket: whoever lets go of the
// lock while the group has no socket removes the file first (groupLock).
// Ungrouped shims have sockets named after their start alone and need no
// lock.

// groupLock is a held group lock.
type groupLock struct {
	file   *os.File
	path   string // the lock file
	socket string // the group's socket file
}

// lockGroup waits for the lock of the group whose shim serves address.
func lockGroup(address string) (*groupLock, error) {
	socket, err := socketPath(address)
	if err != nil {
		return nil, err
	}
	if err := makeSocketFolder(socket); err != nil {
		return nil, err
	}
	l := &groupLock{path: socket + ".lock", socket: socket}
	for {
		file, err := os.OpenFile(l.path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("open the group lock %s: %w", l.path, err)
		}
		if err := flock(file, unix.LOCK_EX); err != nil {
			file.Close()
			return nil, fmt.Errorf("lock the group lock %s: %w", l.path, err)
		}
		// The holder before us may have removed the file as it let go
		// (the group's shim left): what we hold is then no longer the
		// group's lock, and the file at the path, if any, is.
		if sameFile(file, l.path) {
			l.file = file
			return l, nil
		}
		file.Close()
	}
}

// Unlock lets go of the lock. A group left without a socket (its shim left,
// or none could be launched) has its lock file removed first, by the holder,
// so that no other start can hold it at that moment.
func (l *groupLock) Unlock() {
	if _, err := os.Lstat(l.socket); errors.Is(err, os.ErrNotExist) {
		os.Remove(l.path)
	}
	l.file.Close() // closing the last descriptor releases the flock
}

func flock(file *os.File, how int) error {
	for {
		err := unix.Flock(int(file.Fd()), how)
		if err != unix.EINTR {
			return err
		}
	}
}

// sameFile: path still names the open file.
func sameFile(file *os.File, path string) bool {
	opened, err := file.Stat()
	if err != nil {
		return false
	}
	named, err := os.Lstat(path)
	return err == nil && os.SameFile(opened, named)
}

// errNoGroupShim: no shim serves the group's socket.
var errNoGroupShim = errors.New("no shim serves the group")

// joinGroupShim asks the shim serving address, if one does, to await the
// container containerID. Held: the group lock. A socket file that nobody
// serves is removed; the answer is then errNoGroupShim, and the caller
// launches the group's shim.
func joinGroupShim(ctx context.Context, address, containerID string) error {
	conn, err := dialShim(address)
	switch {
	case errors.Is(err, unix.ENOENT):
		return errNoGroupShim
	case errors.Is(err, unix.ECONNREFUSED):
		if err := removeSocket(address); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove the socket of the group's dead shim %s: %w", address, err)
		}
		return errNoGroupShim
	case err != nil:
		return fmt.Errorf("connect to the group's shim at %s: %w", address, err)
	}
	client := ttrpc.NewClient(conn)
	defer client.Close()
	err = client.Call(ctx, groupServiceName, joinMethod, wrapperspb.String(containerID), &emptypb.Empty{})
	if errdefs.IsNotImplemented(errgrpc.ToNative(err)) {
		// A shim of an earlier version, from before an upgrade, has no
		// Group service: it is joined as it always was, without
		// awaiting the container.
		log.G(ctx).WithField("address", address).Warn("the group's shim cannot await a container; joined all the same")
		return nil
	}
	if err != nil {
		return fmt.Errorf("join the group's shim at %s: %w", address, err)
	}
	return nil
}

// The Group service is the shim's own, beside the task API, on the same
// socket: its one method, Join, is how a `start` tells the group's shim that
// a container is on its way.
const (
	groupServiceName = "io.containerd.teach.v2.Group"
	joinMethod       = "Join"
)

func registerGroupService(server *ttrpc.Server, s *TaskService) {
	server.RegisterService(groupServiceName, &ttrpc.ServiceDesc{Methods: map[string]ttrpc.Method{
		joinMethod: method(s.join),
	}})
}

// join awaits a container: the shim stays until its Create, or a Shutdown
// with its id, arrives.
func (s *TaskService) join(ctx context.Context, req *wrapperspb.StringValue) (*emptypb.Empty, error) {
	id := req.GetValue()
	if err := validateID("container", id); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.leaving {
		return nil, fmt.Errorf("join %s: the group's shim is exiting: %w", id, errdefs.ErrFailedPrecondition)
	}
	s.joining[id] = struct{}{}
	return &emptypb.Empty{}, nil
}

// leaveIfIdle decides whether the shim exits, when containerd calls Shutdown
// for the container id: it does if it runs no container and awaits none.
// containerd is done with id, so the shim awaits it no longer. A shim that
// leaves removes its socket at once, under the group lock (see above).
func (s *TaskService) leaveIfIdle(ctx context.Context, id string) bool {
	unlock, err := s.socket.lockGroup()
	if err != nil {
		// Without the lock, the shim stays rather than risk leaving
		// a start that joins it now: a shim too many, not a container
		// lost.
		log.G(ctx).WithError(err).Warn("shutdown: could not take the group lock; staying")
		return false
	}
	defer unlock()
	s.mu.Lock()
	delete(s.joining, id)
	busy := len(s.containers) + len(s.creating) + len(s.joining)
	s.leaving = busy == 0
	s.mu.Unlock()
	if busy > 0 {
		log.G(ctx).WithField("containers", busy).Debug("shutdown requested while containers remain or are awaited; staying")
		return false
	}
	s.socket.removeLocked(ctx)
	return true
}
