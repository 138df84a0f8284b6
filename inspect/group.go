package inspect

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/teach/containerd-shim-teach-v2/journal"
)

// A grouped shim (a Kubernetes pod's, or containers with the same
// io.containerd.teach.v2.group) serves several containers, and holds the
// pipes and FIFOs of all of them. To say whose each is, inspect finds the
// shim's other containers: the tasks of the namespace whose init process is
// the shim's child.

// groupMates are the other running containers the container's shim serves.
func groupMates(c *container) []*container {
	if c.shimPID == 0 {
		return nil
	}
	tasks := filepath.Join(c.stateDir, taskFolder, c.namespace)
	entries, err := os.ReadDir(tasks)
	if err != nil {
		return nil
	}
	var mates []*container
	for _, e := range entries {
		if !e.IsDir() || e.Name() == c.id {
			continue
		}
		mate := &container{stateDir: c.stateDir, namespace: c.namespace, id: e.Name(), bundle: filepath.Join(tasks, e.Name()), shimPID: c.shimPID}
		data, err := os.ReadFile(filepath.Join(mate.bundle, "init.pid"))
		if err != nil {
			continue
		}
		if mate.initPID, err = strconv.Atoi(strings.TrimSpace(string(data))); err != nil {
			continue
		}
		if st, err := readStatus(mate.initPID); err == nil && !st.zombie() && st.PPID == c.shimPID {
			mates = append(mates, mate)
		}
	}
	return mates
}

// fifoOwner is the process a FIFO carries the stdio of.
type fifoOwner struct {
	id   string // the container
	exec string // the exec process; "" for the init
}

// journaledFIFOs maps the FIFO paths our shim's journals recorded opening
// to the container and process each belongs to: the only exact answer for
// an exec's FIFOs, whose names carry the exec id alone. A container of
// another runtime, or with its journal off, adds nothing.
func journaledFIFOs(stateDir, namespace string, ids []string) map[string]fifoOwner {
	fifos := map[string]fifoOwner{}
	for _, id := range ids {
		found, err := journal.Find(journal.DefaultRoot, stateDir, namespace, id)
		if err != nil {
			continue
		}
		story, err := journal.Read(found.Dir)
		if err != nil {
			continue
		}
		for _, e := range story.Entries {
			if e.Kind == journal.KindOpen && e.Msg == "fifo" && e.Path != "" {
				fifos[e.Path] = fifoOwner{id: id, exec: e.Exec}
			}
		}
	}
	return fifos
}
