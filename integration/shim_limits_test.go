package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/teach/containerd-shim-teach-v2/integration/harness"
)

// What a client can make the shim hold: these tests call the shim directly,
// the way containerd does, as often or with as much as a misbehaving client
// could, and check that the shim's memory comes back to its baseline.

// startSleeper creates and starts container id running sleep, and deletes
// it when the test ends.
func (s *directShim) startSleeper(t *testing.T, id string) {
	t.Helper()
	if err := s.create(id, s.bundle(t, id, "sleep", "1000"), s.runc); err != nil {
		t.Fatal(err)
	}
	if _, err := s.task.Start(s.ctx, &taskAPI.StartRequest{ID: id}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.task.Kill(s.ctx, &taskAPI.KillRequest{ID: id, Signal: uint32(unix.SIGKILL)})
		s.task.Wait(s.ctx, &taskAPI.WaitRequest{ID: id})
		s.task.Delete(s.ctx, &taskAPI.DeleteRequest{ID: id})
	})
}

// rss is the shim's resident memory now.
func (s *directShim) rss(t *testing.T) int64 {
	t.Helper()
	status, err := harness.ReadProcessStatus(s.pid)
	if err != nil {
		t.Fatal(err)
	}
	return status.RSS
}

// sendKills sends n Kill requests to the container, from a few goroutines:
// signal 0 (is it there?), SIGCONT (harmless to sleep) and 999 (refused).
func (s *directShim) sendKills(t *testing.T, id string, n int) {
	t.Helper()
	signals := []uint32{0, uint32(unix.SIGCONT), 999}
	const senders = 4
	var wg sync.WaitGroup
	for sender := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := sender; i < n; i += senders {
				s.task.Kill(s.ctx, &taskAPI.KillRequest{ID: id, Signal: signals[i%len(signals)]})
			}
		}()
	}
	wg.Wait()
}

// A client that sends a container 100 000 Kill requests (probes with signal
// 0, harmless signals, refused ones) leaves the shim's memory where it was:
// the shim keeps the latest kill of each signal, not every kill.
func TestShimMemoryStaysFlatOverManyKills(t *testing.T) {
	s := startShimDirectly(t)
	s.startSleeper(t, "probed")
	// The first requests grow what any request needs (buffers, the
	// journal's file); the baseline is taken after them.
	s.sendKills(t, "probed", 10000)
	baseline := s.rss(t)
	s.sendKills(t, "probed", 100000)
	after := s.rss(t)
	t.Logf("shim RSS %s after 10 000 kills, %s after 100 000 more", harness.MiB(baseline), harness.MiB(after))
	if after > baseline+2<<20 {
		t.Errorf("100 000 kills grew the shim from %s to %s; want it flat", harness.MiB(baseline), harness.MiB(after))
	}
}

// annotate adds an annotation to a bundle's config.json.
func annotate(t *testing.T, bundle, key, value string) {
	t.Helper()
	path := filepath.Join(bundle, "config.json")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var spec specs.Spec
	if err := json.Unmarshal(data, &spec); err != nil {
		t.Fatal(err)
	}
	spec.Annotations = map[string]string{key: value}
	if data, err = json.Marshal(spec); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// A Create whose config.json carries one huge annotation: at 100 MiB it is
// refused as InvalidArgument, unread; at 12 MiB the container is created,
// and once Create has returned, the shim's memory is back near where it was
// before (the factor is generous: without giving the memory back, the shim
// keeps several times the file's size).
func TestAHugeConfigDoesNotStayInTheShim(t *testing.T) {
	s := startShimDirectly(t)
	s.startSleeper(t, "first")
	baseline := s.rss(t)

	over := s.bundle(t, "over", "sleep", "1000")
	annotate(t, over, "huge", strings.Repeat("x", 100<<20))
	err := s.create("over", over, s.runc)
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "16 MiB") {
		t.Errorf("create with a 100 MiB config.json: got %v, want InvalidArgument naming the 16 MiB the shim reads", err)
	}
	afterRefused := s.rss(t)

	large := s.bundle(t, "large", "sleep", "1000")
	annotate(t, large, "huge", strings.Repeat("x", 12<<20))
	if err := s.create("large", large, s.runc); err != nil {
		t.Fatalf("create with a 12 MiB config.json: %v", err)
	}
	t.Cleanup(func() { s.task.Delete(s.ctx, &taskAPI.DeleteRequest{ID: "large"}) })
	afterLarge := s.rss(t)

	t.Logf("shim RSS %s with one container, %s after the refused Create, %s after the 12 MiB one",
		harness.MiB(baseline), harness.MiB(afterRefused), harness.MiB(afterLarge))
	for what, rss := range map[string]int64{"the refused 100 MiB Create": afterRefused, "the 12 MiB Create": afterLarge} {
		if rss > baseline*3/2 {
			t.Errorf("after %s the shim holds %s; before, %s", what, harness.MiB(rss), harness.MiB(baseline))
		}
	}
}
