package cgroup

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"

	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/log"
	"golang.org/x/sys/unix"
)

// WatchOOM, cgroup v1: the memory controller reports OOM kills through an
// eventfd registered on memory.oom_control (cgroup.event_control). Each
// read of the eventfd returns a count of events. The kernel also signals the
// eventfd when the cgroup is removed, which is how the watch ends: after each
// wake-up, a cgroup that no longer exists means the container is gone.
func (l *legacy) WatchOOM(onOOM func()) error {
	fd, err := l.cgroup.OOMEventFD()
	if err != nil {
		return fmt.Errorf("register for OOM events: %w", err)
	}
	eventfd := os.NewFile(fd, "oom-eventfd")
	go func() {
		defer eventfd.Close()
		var count [8]byte
		for {
			if _, err := eventfd.Read(count[:]); err != nil {
				return
			}
			if l.cgroup.State() == cgroup1.Deleted {
				return
			}
			if binary.LittleEndian.Uint64(count[:]) > 0 {
				onOOM()
			}
		}
	}()
	return nil
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
