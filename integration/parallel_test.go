package integration

import (
	"fmt"
	"sync"
	"testing"
)

// parallelContainers is how many containers start at once: enough that
// exits, events and stdio of different containers interleave in the daemon
// and in the reaping of their shims.
const parallelContainers = 20

// Each container prints its own name and exits with its own index, so a
// status or an output delivered to the wrong container shows up.
func TestParallelContainers(t *testing.T) {
	forEachDaemonAndRuntime(t, func(t *testing.T, s *session) {
		results := make([]runResult, parallelContainers)
		errs := make([]error, parallelContainers)
		var wg sync.WaitGroup
		for i := range parallelContainers {
			wg.Go(func() {
				id := fmt.Sprintf("parallel-%02d", i)
				results[i], errs[i] = s.run(id, nil, "sh", "-c", fmt.Sprintf("echo %s; exit %d", id, i))
			})
		}
		wg.Wait()

		for i := range parallelContainers {
			id := fmt.Sprintf("parallel-%02d", i)
			if errs[i] != nil {
				t.Errorf("%s: %v", id, errs[i])
				continue
			}
			switch {
			case results[i].exitCode != uint32(i):
				t.Errorf("%s: exit code %d, want %d", id, results[i].exitCode, i)
			case results[i].stdout != id+"\n":
				s.shimFellShort(t, "%s: stdout %q, want %q", id, results[i].stdout, id+"\n")
			}
		}
	})
}
