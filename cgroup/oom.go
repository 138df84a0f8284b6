package cgroup

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/containerd/log"
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

// WatchOOM, cgroup v2: memory.events counts oom_kill; containerd/cgroups
// watches the file with inotify and sends each change.
func (u *unified) WatchOOM(onOOM func()) error {
	events, errs := u.manager.EventChan()
	go func() {
		var lastKills uint64
		for {
			select {
			case event := <-events:
				if event.OOMKill > lastKills {
					lastKills = event.OOMKill
					onOOM()
				}
			case err := <-errs:
				if err != nil && !errors.Is(err, unix.ENOENT) {
					log.L.WithError(err).Debug("cgroup v2 OOM watch ended")
				}
				return
			}
		}
	}()
	return nil
}
