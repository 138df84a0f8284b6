package integration

import (
	"encoding/binary"
	"encoding/json"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

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

// stallFrames opens n connections to the shim, each of which announces a
// ttrpc frame of almost 4 MiB, sends half of it and then nothing more. The
// channel receives once for each connection the shim closes.
func (s *directShim) stallFrames(t *testing.T, n int) <-chan struct{} {
	t.Helper()
	const announced = 4<<20 - 1024
	half := make([]byte, 10+announced/2)
	binary.BigEndian.PutUint32(half, announced)
	binary.BigEndian.PutUint32(half[4:], 1) // stream 1
	half[8] = 1                             // a request
	closedByShim := make(chan struct{}, n)
	for range n {
		conn, err := net.Dial("unix", s.address)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		go func() {
			// The write waits while the shim does not read; then
			// the read waits for the shim to hang up.
			if _, err := conn.Write(half); err == nil {
				io.Copy(io.Discard, conn)
			}
			closedByShim <- struct{}{}
		}()
	}
	return closedByShim
}

// 200 clients that each begin a frame of almost 4 MiB and stall: the
// shim's memory stays bounded (it serves a few connections at a time, and
// the ttrpc server allocates a frame's announced size only for those), it
// hangs up on a client that stalled mid-frame, and the connection it
// already serves, containerd's, is answered throughout.
func TestStalledFramesNeitherGrowTheShimNorStopContainerd(t *testing.T) {
	s := startShimDirectly(t)
	s.startSleeper(t, "served")
	baseline := s.rss(t)
	sampler := sampleRSS(s.pid)
	defer sampler.Stop()
	closedByShim := s.stallFrames(t, 200)
	if _, err := s.task.State(s.ctx, &taskAPI.StateRequest{ID: "served"}); err != nil {
		t.Fatalf("State while clients stall: %v", err)
	}
	// The bound is a failure's, not the shim's: it hangs up within a
	// few seconds.
	giveUp := time.After(3 * time.Minute)
	for hungUp := 0; hungUp < 10; hungUp++ {
		select {
		case <-closedByShim:
			continue
		case <-giveUp:
			t.Errorf("the shim hung up on %d of 200 clients that stalled mid-frame", hungUp)
		}
		break
	}
	if _, err := s.task.State(s.ctx, &taskAPI.StateRequest{ID: "served"}); err != nil {
		t.Fatalf("State after the shim hung up on stalled clients: %v", err)
	}
	peak := sampler.Stop()
	t.Logf("shim RSS %s before, at most %s while 200 clients stalled mid-frame", harness.MiB(baseline), harness.MiB(peak))
	if peak > baseline+128<<20 {
		t.Errorf("200 stalled frames grew the shim from %s to %s", harness.MiB(baseline), harness.MiB(peak))
	}
}
