// Package harness starts what the integration tests need around the shim,
// and looks at what a container leaves on the host.
//
// A test's session, in the order a person would do it by hand:
//
//	d := harness.StartContainerd(t, "v2.4.2")        // private root, state, sockets, log
//	ctx, ns := d.Namespace(t, "teach")                // a namespace no other daemon uses
//	img := harness.ImportBusybox(t, ctx, d.Client())  // built offline from /bin/busybox
//	... create and run containers with d.Client(), or d.CtrRun(t, ns, runtime, id, nil, "sh", "-c", "exit 3")
//	harness.ParentPID(initPID)                        // the process tree
//	d.AssertNoContainerTraces(t, ns, id)              // mounts, bundle, runc state
//
// The same daemon with the Kubernetes API (cri.go), and Docker on top of a
// daemon (dockerd.go):
//
//	d := harness.StartContainerdWith(t, "v2.4.2", harness.Options{CRI: true,
//		RuntimeHandlers: []harness.RuntimeHandler{{Name: "teach", RuntimeType: harness.TeachRuntime}}})
//	pod := d.MustCrictl(t, "runp", "--runtime", "teach", podJSON)  // pause and busybox already imported
//	dd := harness.StartDockerd(t, d, harness.TeachDaemonJSON(t))   // docs/examples/daemon.json
//	dd.LoadBusybox(t)
//	dd.Docker(t, "run", "--rm", "--runtime", "teach", "--network", "none", harness.DockerBusybox, "true")
//
// Everything a daemon started is removed when the test ends, even after the
// test killed the daemon: tasks are deleted through the API while it runs,
// then leftover shims are killed by pid, leftover runc containers are
// force-deleted, mounts are unmounted and the folder is removed.
//
// The pinned daemons, runc, dockerd and crictl come from hack/tools.sh
// (tools.go finds them); our shim comes from $TEACH_SHIM_BIN or is built
// once per test binary (shim.go). TestMain should call Main, which removes those shared builds.
package harness
