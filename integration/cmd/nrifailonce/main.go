// Command nrifailonce is an NRI plugin for the tests: it fails the first
// RunPodSandbox of every pod whose name starts with "nri-fail-once", and lets
// every later one through. containerd then has to clean up a sandbox whose
// pause container already runs in its shim, and a retry of the same pod must
// succeed.
//
//	nrifailonce SOCKET
//
// It connects to containerd's NRI socket, and says "registered" on stdout
// once containerd has taken it, so that a test knows when to begin.
package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/containerd/nri/pkg/api"
	"github.com/containerd/nri/pkg/stub"
)

// failOnce remembers the pods it already failed.
type failOnce struct {
	mu     sync.Mutex
	failed map[string]bool
}

func (p *failOnce) Configure(ctx context.Context, config, runtime, version string) (stub.EventMask, error) {
	fmt.Printf("registered with %s %s\n", runtime, version)
	return api.ParseEventMask("RunPodSandbox")
}

func (p *failOnce) RunPodSandbox(ctx context.Context, pod *api.PodSandbox) error {
	if !strings.HasPrefix(pod.GetName(), "nri-fail-once") {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failed[pod.GetName()] {
		return nil
	}
	p.failed[pod.GetName()] = true
	return fmt.Errorf("nrifailonce refuses the first start of pod %s", pod.GetName())
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: nrifailonce SOCKET")
		os.Exit(2)
	}
	plugin := &failOnce{failed: map[string]bool{}}
	s, err := stub.New(plugin, stub.WithSocketPath(os.Args[1]), stub.WithPluginName("failonce"), stub.WithPluginIdx("10"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := s.Run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
