package integration

// knownShimBugs are failures of our shim that the reliability tests found and
// that wait for a fix in shim/, process/ or io/. A teach row that hits one
// skips its remaining checks with this description instead of failing (see
// scenario.knownShimBug), so that main stays green meanwhile; the skip, with
// what was seen, shows in the test output and in docs/reliability.md.
//
// Fixing a bug means deleting its line here: the check then fails again if
// the bug is still there.
var knownShimBugs = map[string]string{
	"exit-lost-across-restart": "an exit that happens while containerd is down is never reported: when containerd starts again " +
		"it asks the shim for the task's pids, ours answers an empty list for a task whose init has exited, " +
		"so containerd takes the shim for a leftover, deletes the task and shuts the shim down during its own start-up, " +
		"before any client can Wait or subscribe (the stock runc shim answers the same and loses the exit the same way)",
	"shim-delete-leaves-socket": "after the shim is killed with SIGKILL, `containerd-shim-teach-v2 delete` leaves the shim's " +
		"socket in /run/containerd/s (it removes the runc state and the rootfs mount, but never the socket the dead server listened on)",
	"runc-call-without-deadline": "a runc command that never returns hangs the RPC that ran it for as long as the caller waits: " +
		"the shim runs runc with the request's context and no deadline of its own, so a Kill without a client deadline " +
		"never answers while `runc kill` hangs (State still answers; the stock runc shim hangs too, and its State with it)",
	"writes-through-bundle-symlinks": "the shim writes files in the bundle with os.WriteFile, which follows a symlink " +
		"out of it: `start` writes the socket address into `address` in its working folder, and Create writes the " +
		"runtime options into `options.json`, each through whatever symlink is there",
}
