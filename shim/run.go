// Package shim is the containerd side of the shim: how the binary is
// started, the task service containerd calls, and the events it sends back.
package shim

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/containerd/containerd/v2/pkg/shim"

	"github.com/teach/containerd-shim-teach-v2/inspect"
	"github.com/teach/containerd-shim-teach-v2/trace"
	"github.com/teach/containerd-shim-teach-v2/version"
)

// Run is the whole program; main hands over to it. containerd runs this
// binary in three ways:
//
//	containerd-shim-teach-v2 ... start    launch the shim server, print its address
//	containerd-shim-teach-v2 ... delete   clean up after a shim that died
//	containerd-shim-teach-v2 ...          the shim server itself (started by start)
//
// and people run it as `containerd-shim-teach-v2 inspect ID` (package
// inspect) and `containerd-shim-teach-v2 trace ID` (package trace).
func Run() {
	flags, err := parseLaunchFlags(os.Args[1:])
	switch {
	case len(os.Args) > 1 && os.Args[1] == "trace":
		os.Exit(trace.Main(os.Args[2:], os.Stdout, os.Stderr))
	case len(os.Args) > 1 && os.Args[1] == "inspect":
		os.Exit(inspect.Run(os.Args[2:], os.Stdout, os.Stderr))
	case err == nil && flags.version:
		printVersion()
	case err == nil && flags.action == "start":
		if err := runStart(context.Background(), flags, os.Stdin, os.Stdout); err != nil {
			fmt.Fprintf(os.Stderr, "%s: start: %s\n", RuntimeName, err)
			os.Exit(1)
		}
	default:
		// One P is enough for the shim server: its Go work is small
		// (decode an RPC, route an exit, forward an event) and its copying
		// of stdio waits in read and write. Each further P keeps spans
		// of its own for every size class and wants a thread; one P makes
		// an idle shim about 0.25 MiB smaller (docs/benchmarks.md,
		// History). containerd starts shims with GOMAXPROCS=2 in the
		// environment, which pkg/shim then leaves alone; runc, a Go
		// program we start, still inherits that.
		runtime.GOMAXPROCS(1)
		registerTaskService()
		// The Reaper (process/reaper.go) collects every child, so pkg/shim
		// must not reap too: NoReaper. pkg/shim still makes the server a
		// child subreaper.
		shim.RunShim(context.Background(), manager{}, func(c *shim.Config) { c.NoReaper = true })
	}
}

func printVersion() {
	fmt.Printf("%s:\n", filepath.Base(os.Args[0]))
	fmt.Println("  Version:   ", version.Version)
	fmt.Println("  Revision:  ", version.Revision)
	fmt.Println("  Go version:", version.GoVersion)
}
