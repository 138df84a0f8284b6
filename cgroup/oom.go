package cgroup

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// WatchOOM, cgroup v1: the memory controller reports OOM kills through an
// eventfd registered on memory.oom_control (cgroup.event_control). Each
// read of the eventfd returns a count of events. The kernel also signals the
// eventfd when the cgroup is removed, which is how the watch ends: after each
// wake-up, a cgroup that no longer exists means the container is gone.
func (l *legacy) WatchOOM(onOOM func()) error {
	eventfd, err := registerOOMEvents(l.memory)
	if err != nil {
		return fmt.Errorf("register for OOM events of %s: %w", l.memory, err)
	}
	go func() {
		defer eventfd.Close()
		var count [8]byte
		for {
			if _, err := eventfd.Read(count[:]); err != nil {
				return
			}
			if _, err := os.Stat(l.memory); err != nil {
				return
			}
			if binary.LittleEndian.Uint64(count[:]) > 0 {
				onOOM()
			}
		}
	}()
	return nil
}

// registerOOMEvents makes an eventfd the kernel signals on each OOM event of
// the memory cgroup in folder memory: writing "<eventfd> <fd of
// memory.oom_control>" to the cgroup's cgroup.event_control registers it
// (the kernel's cgroup-v1 memory documentation, "OOM Control").
//
// The eventfd is non-blocking, so os.NewFile hands it to Go's poller: the
// watching goroutine waits there, without holding a thread of its own in
// read(2) for the container's whole life.
func registerOOMEvents(memory string) (*os.File, error) {
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	eventfd := os.NewFile(uintptr(fd), "oom-eventfd")
	oomControl, err := os.Open(filepath.Join(memory, "memory.oom_control"))
	if err != nil {
		eventfd.Close()
		return nil, err
	}
	defer oomControl.Close()
	registration := fmt.Sprintf("%d %d", fd, oomControl.Fd())
	if err := os.WriteFile(filepath.Join(memory, "cgroup.event_control"), []byte(registration), 0); err != nil {
		eventfd.Close()
		return nil, err
	}
	return eventfd, nil
}

// WatchOOM, cgroup v2: the kernel counts OOM kills in the cgroup's
// memory.events (oom_kill), and tells inotify of each change to the file
// (IN_MODIFY); it does the same for cgroup.events, whose "populated 0" says
// the cgroup's last process has gone, which ends the watch. The inotify
// descriptor is non-blocking, in Go's poller, like the v1 eventfd.
func (u *unified) WatchOOM(onOOM func()) error {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return fmt.Errorf("inotify: %w", err)
	}
	inotify := os.NewFile(uintptr(fd), "memory-events-inotify")
	for _, file := range []string{"memory.events", "cgroup.events"} {
		if _, err := unix.InotifyAddWatch(fd, filepath.Join(u.dir, file), unix.IN_MODIFY); err != nil {
			inotify.Close()
			return fmt.Errorf("watch %s of %s: %w", file, u.dir, err)
		}
	}
	go func() {
		defer inotify.Close()
		events := make([]byte, 10*unix.SizeofInotifyEvent)
		var reported uint64
		for {
			if _, err := inotify.Read(events); err != nil {
				return
			}
			populated, err := readCounter(filepath.Join(u.dir, "cgroup.events"), "populated")
			if err != nil {
				return
			}
			kills, err := u.OOMKills()
			if err != nil {
				return
			}
			if kills > reported {
				reported = kills
				onOOM()
			}
			if populated == 0 {
				return
			}
		}
	}()
	return nil
}
