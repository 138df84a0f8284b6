package shim

import "os"

// An idle shim is smaller when its Go runtime never had a second P.
//
// containerd starts every shim with GOMAXPROCS=2 in its environment. A
// runtime started with two Ps gives each its own cache of memory spans; when
// the server then set one P with runtime.GOMAXPROCS(1), the second P's cache
// went back to the heap, and the runtime's bookkeeping for it stayed
// resident. Whether the second P had run anything before that call depended
// on the scheduler, so idle shims fell into two groups, about 0.5 MiB of
// private memory apart (docs/benchmarks.md, History). The server is
// therefore started with GOMAXPROCS=1, which the runtime reads before any Go
// code runs.
//
// runc is a Go program too, and the shim starts it; it should see what
// containerd gave the shim, as under any other shim. The server is told that
// value and puts it back into its own environment, which its children
// inherit.

// containerdGOMAXPROCSEnv carries containerd's GOMAXPROCS (empty when it set
// none) from `start` to the server.
const containerdGOMAXPROCSEnv = "TEACH_SHIM_CONTAINERD_GOMAXPROCS"

// oneProcessorEnv is what `start` adds to the server's environment; later
// entries win over containerd's.
func oneProcessorEnv() []string {
	return []string{"GOMAXPROCS=1", containerdGOMAXPROCSEnv + "=" + os.Getenv("GOMAXPROCS")}
}

// restoreChildGOMAXPROCS gives the server's environment, and so runc's,
// containerd's GOMAXPROCS back. The runtime read the variable at start and
// does not look at it again.
func restoreChildGOMAXPROCS() {
	value, ok := os.LookupEnv(containerdGOMAXPROCSEnv)
	if !ok {
		return
	}
	os.Unsetenv(containerdGOMAXPROCSEnv)
	if value == "" {
		os.Unsetenv("GOMAXPROCS")
		return
	}
	os.Setenv("GOMAXPROCS", value)
}
