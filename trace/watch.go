package trace

import (
	"time"

	"golang.org/x/sys/unix"
)

// folderWatch wakes --follow when a journal may have grown: inotify tells
// when a file in one of the journal folders is written, created or renamed
// (the shim appends a line, rotates the file, marks the container ended).
// Where inotify cannot be had (no instances left: fs.inotify.max_user_instances),
// it falls back to looking every pollInterval.
//
// The wait still ends every shimCheckInterval without a change: a shim
// killed with SIGKILL writes nothing more, and only looking at it tells.
type folderWatch struct {
	fd int // the inotify instance; -1 when polling
}

const (
	// pollInterval is how often --follow looks when inotify is missing.
	pollInterval = 200 * time.Millisecond
	// shimCheckInterval is how long --follow waits for a line before it
	// checks whether the shim is still alive.
	shimCheckInterval = time.Second
)

// inotifyEvents are the changes to a journal folder that may add lines.
const inotifyEvents = unix.IN_MODIFY | unix.IN_CREATE | unix.IN_MOVED_TO | unix.IN_CLOSE_WRITE

// watchFolders starts watching the folders; it polls when inotify fails.
func watchFolders(dirs ...string) *folderWatch {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return &folderWatch{fd: -1}
	}
	for _, dir := range dirs {
		if _, err := unix.InotifyAddWatch(fd, dir, inotifyEvents); err != nil {
			unix.Close(fd)
			return &folderWatch{fd: -1}
		}
	}
	return &folderWatch{fd: fd}
}

// polling: the watch has no inotify and looks on a timer.
func (w *folderWatch) polling() bool { return w.fd < 0 }

// wait returns when a watched folder changed, or when it is time to look
// anyway.
func (w *folderWatch) wait() {
	if w.polling() {
		time.Sleep(pollInterval)
		return
	}
	fds := []unix.PollFd{{Fd: int32(w.fd), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, int(shimCheckInterval/time.Millisecond))
	if err != nil && err != unix.EINTR {
		// The instance broke: go on by polling.
		w.Close()
		return
	}
	if n > 0 {
		w.drain()
	}
}

// drain reads the pending events: their content does not matter, the
// follower reads what was added whatever changed.
func (w *folderWatch) drain() {
	buf := make([]byte, 4096)
	for {
		if n, err := unix.Read(w.fd, buf); n <= 0 || err != nil {
			return
		}
	}
}

func (w *folderWatch) Close() {
	if w.fd >= 0 {
		unix.Close(w.fd)
		w.fd = -1
	}
}
