package inspect

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/teach/containerd-shim-teach-v2/journal"
)

// Kinds of descriptor.
const (
	kindSocket   = "socket"
	kindPipe     = "pipe"
	kindFIFO     = "fifo"
	kindConsole  = "console"
	kindFile     = "file"
	kindDevice   = "device"
	kindKernelFD = "kernel" // anon_inode: pidfd, epoll, eventfd, inotify
)

// stdioNames are the names of descriptors 0, 1 and 2.
var stdioNames = [...]string{"stdin", "stdout", "stderr"}

// fdContext is what the classification of the shim's descriptors compares
// against.
type fdContext struct {
	id          string
	bundles     string // the folder of every task's bundle
	socketInode uint64
	// pipes maps "pipe:[inode]" to the container process's end of it:
	// "stdout of init (pid 24628)".
	pipes map[string]string
	// matePipes and mates are the same for the shim's other containers
	// (a grouped shim's): the pipe's end, and the container it is of.
	matePipes map[string]mateEnd
	mates     []string
	// fifos are the FIFOs the journals name, with their process.
	fifos map[string]fifoOwner
	// isFIFO reports whether the descriptor's file is a named pipe.
	isFIFO func(fd int) bool
}

// mateEnd is a pipe's end in another container of the shim: "stdout of
// init (pid 7)" of container id.
type mateEnd struct{ end, id string }

// shimDescriptors lists the shim's open descriptors and what each is for.
func shimDescriptors(c *container, procs []Process) []Descriptor {
	dir := procPath(c.shimPID, "fd")
	ctx := fdContext{
		id:          c.id,
		bundles:     filepath.Join(c.stateDir, taskFolder),
		socketInode: c.socketInode,
		pipes:       containerPipes(procs),
		isFIFO: func(fd int) bool {
			info, err := os.Stat(filepath.Join(dir, strconv.Itoa(fd)))
			return err == nil && info.Mode()&os.ModeNamedPipe != 0
		},
	}
	mates := groupMates(c)
	ctx.matePipes = map[string]mateEnd{}
	for _, mate := range mates {
		ctx.mates = append(ctx.mates, mate.id)
		procs, err := containerProcesses(mate)
		if err != nil {
			continue
		}
		for pipe, end := range containerPipes(procs) {
			ctx.matePipes[pipe] = mateEnd{end: end, id: mate.id}
		}
	}
	ctx.fifos = journaledFIFOs(c.stateDir, c.namespace, append([]string{c.id}, ctx.mates...))
	var fds []Descriptor
	for _, fd := range openDescriptors(c.shimPID) {
		kind, meaning := classify(ctx, fd.FD, fd.Target)
		fd.Kind, fd.Meaning = kind, meaning
		fds = append(fds, fd)
	}
	return fds
}

// openDescriptors lists what ls -l /proc/<pid>/fd shows, in fd order: each
// descriptor and its link, a path or "type:[inode]".
func openDescriptors(pid int) []Descriptor {
	dir := procPath(pid, "fd")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var fds []Descriptor
	for _, e := range entries {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		target, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue // closed while we read
		}
		fds = append(fds, Descriptor{FD: fd, Target: target})
	}
	sort.Slice(fds, func(i, j int) bool { return fds[i].FD < fds[j].FD })
	return fds
}

// containerPipes maps the pipes on the container processes' stdio to the
// process and descriptor holding them.
func containerPipes(procs []Process) map[string]string {
	pipes := map[string]string{}
	for _, p := range procs {
		who := fmt.Sprintf("pid %d", p.PID)
		if p.Role != "" {
			who = fmt.Sprintf("%s (pid %d)", p.Role, p.PID)
		}
		for fd, name := range stdioNames {
			target, err := os.Readlink(procPath(p.PID, fmt.Sprintf("fd/%d", fd)))
			if err == nil && strings.HasPrefix(target, "pipe:[") {
				if _, seen := pipes[target]; !seen {
					pipes[target] = name + " of " + who
				}
			}
		}
	}
	return pipes
}

// classify says what one descriptor of the shim is. target is its
// /proc/<shim>/fd link: a path, or "type:[inode]" for what has none.
func classify(ctx fdContext, fd int, target string) (kind, meaning string) {
	switch {
	case target == fmt.Sprintf("socket:[%d]", ctx.socketInode):
		return kindSocket, "the shim's listening socket: containerd connects here to call the task API"
	case strings.HasPrefix(target, "socket:["):
		return kindSocket, "a connection: containerd's calls to the task API, or the shim's own to containerd's event socket"
	case strings.HasPrefix(target, "pipe:["):
		if end, ok := ctx.pipes[target]; ok {
			return kindPipe, "the shim's end of the pipe on the " + end + "; the shim copies between it and containerd's FIFO"
		}
		if mate, ok := ctx.matePipes[target]; ok {
			return kindPipe, "the shim's end of the pipe on the " + mate.end + " of another container of this shim: " + mate.id
		}
		return kindPipe, "a pipe not on the container's stdio: another process's, or a logging program's"
	case strings.HasPrefix(target, "anon_inode:"):
		return kindKernelFD, anonMeaning(strings.TrimPrefix(target, "anon_inode:"))
	case target == "/dev/ptmx" || target == "/dev/pts/ptmx":
		return kindConsole, "a terminal's master side: the container's process has the other side as its /dev/pts/N, the shim relays it"
	case target == "/dev/null":
		return kindDevice, "/dev/null: stdio the shim server has no use for"
	case strings.HasPrefix(target, "/dev/"):
		return kindDevice, "a device"
	case strings.HasPrefix(target, ctx.bundles+"/"):
		return bundleFile(ctx, fd, target)
	case ctx.isFIFO(fd):
		return kindFIFO, fifoMeaning(ctx, target)
	case strings.HasPrefix(target, journal.DefaultRoot+"/") && strings.HasSuffix(target, ".jsonl"):
		return kindFile, "the journal: the shim appends a line for each step it takes; `trace` draws it"
	case strings.HasPrefix(target, cgroupRoot+"/"):
		return kindFile, "a cgroup file: " + filepath.Base(target) + " (the Go runtime reads the CPU quota, the OOM watch its notifications)"
	}
	return kindFile, "a file"
}

// bundleFile is a file in some task's bundle; "log" is the FIFO containerd
// reads the shim's own log from.
func bundleFile(ctx fdContext, fd int, target string) (string, string) {
	rel, _ := filepath.Rel(ctx.bundles, target)
	kind := kindFile
	if ctx.isFIFO(fd) {
		kind = kindFIFO
	}
	if filepath.Base(target) == "log" && kind == kindFIFO {
		return kind, "the shim's log: containerd reads this FIFO in the bundle and copies its lines into its own log (" + rel + ")"
	}
	return kind, "a file of the bundle " + filepath.Dir(rel)
}

// fifoMeaning describes one of containerd's stdio FIFOs. The journals say
// whose each is (journaledFIFOs); without them, the name tells: it ends in
// the stream it carries (ctr: .../<id>-stdout, Docker: .../<id>/init-stdout),
// and the container's own carry its id in the path, those of exec
// processes their exec id.
func fifoMeaning(ctx fdContext, path string) string {
	base := filepath.Base(path)
	for _, stream := range stdioNames {
		if !strings.HasSuffix(base, stream) {
			continue
		}
		if owner, ok := ctx.fifos[path]; ok {
			return "containerd's " + stream + " FIFO of " + owner.describe(ctx.id)
		}
		if namesContainer(path, ctx.id, stream) {
			return "containerd's " + stream + " FIFO of this container: the client (ctr, dockerd) opens it too, and reads or writes the other side"
		}
		for _, mate := range ctx.mates {
			if namesContainer(path, mate, stream) {
				return "containerd's " + stream + " FIFO of another container of this shim: " + mate
			}
		}
		return "containerd's " + stream + " FIFO of another process this shim serves (an exec, or another container of its group)"
	}
	return "a FIFO"
}

// describe names the FIFO's process, seen from container id.
func (o fifoOwner) describe(id string) string {
	process := "init"
	if o.exec != "" {
		process = "exec " + o.exec
	}
	if o.id == id {
		if o.exec == "" {
			return "this container: the client (ctr, dockerd) opens it too, and reads or writes the other side"
		}
		return "this container's " + process
	}
	return "another container of this shim: " + o.id + " (its " + process + ")"
}

// namesContainer reports whether a FIFO path belongs to container id: its
// name is <id>-<stream>, or one of its folders is named <id>.
func namesContainer(path, id, stream string) bool {
	if filepath.Base(path) == id+"-"+stream {
		return true
	}
	for _, part := range strings.Split(filepath.Dir(path), "/") {
		if part == id {
			return true
		}
	}
	return false
}

// anonMeaning describes a descriptor that has no file behind it.
func anonMeaning(what string) string {
	switch what {
	case "[pidfd]":
		return "a pidfd: a handle on a child process (runc, or a container process), which no recycled pid can be mistaken for"
	case "[eventpoll]":
		return "an epoll instance: the Go runtime's network poller, which waits for the pipes, FIFOs, sockets and terminals"
	case "[eventfd]":
		return "an eventfd: how a thread wakes the poller, or the cgroup v1 OOM notification"
	case "inotify":
		return "inotify: the cgroup v2 OOM watch"
	}
	return "a kernel object (" + what + ")"
}
